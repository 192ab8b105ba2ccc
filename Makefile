# My MobiFone platform. `make up` starts everything; `make test` runs every test.
SHELL := /bin/bash
LOCAL := deploy/local
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: up down status logs where install infra topics test test-unit soak drill drill-short lint fmt docs ledger-check bench bench-store bench-bus-auth bench-consumer bench-api bench-payment bench-otp bench-stores bench-vas bench-loyalty bench-ledger clean

up:            ## infrastructure + topics + sandboxes + services + gateway + Prometheus + demo data
	@$(LOCAL)/platform.sh up

down:          ## stop everything the platform started
	@$(LOCAL)/platform.sh down

status:
	@$(LOCAL)/platform.sh status

logs:          ## tail all logs (make logs NAME=account for one)
	@$(LOCAL)/platform.sh logs $(NAME)

where:
	@$(LOCAL)/platform.sh where

install:       ## Python deps, Kafka jars, FerretDB, Debian packages, into .cache/
	@$(LOCAL)/install.sh all

infra:         ## just Kafka, FerretDB (+PostgreSQL) and Redis
	@$(LOCAL)/install.sh all && $(LOCAL)/infra.sh up

topics:
	@$(VENV)/python -m servicekit.kafka.admin

test:          ## the whole suite against the running platform (started if needed)
	@$(LOCAL)/platform.sh up >/dev/null
	@$(VENV)/pytest $(PYTEST_ARGS)

soak:          ## the VAS model-based test under faults for SOAK_MINUTES (30) minutes, on the running platform
	@$(LOCAL)/platform.sh up >/dev/null
	@SOAK_MINUTES=$${SOAK_MINUTES:-30} $(VENV)/pytest -q -s -p no:cacheprovider tests/e2e/test_vas_model.py $(PYTEST_ARGS)

drill:         ## the fault drill on the running platform: kills, restarts, network faults (DRILL_ARGS=...)
	@$(LOCAL)/platform.sh up >/dev/null
	@$(VENV)/python -m tools.drill $${DRILL_ARGS:-}

drill-short:   ## the test command's drill: a service kill, the broker restart, one cut (a few minutes)
	@$(LOCAL)/platform.sh up >/dev/null
	@$(VENV)/python -m tools.drill --short $${DRILL_ARGS:-}

test-unit:     ## only tests that need no servers
	@$(VENV)/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

lint:
	@$(VENV)/ruff check .
	@$(VENV)/ruff format --check .
	@$(VENV)/mypy

fmt:
	@$(VENV)/ruff format . && $(VENV)/ruff check --fix .

ledger-check:  ## prove the money invariants on the running platform (exit 1 on a violation)
	@$(VENV)/ledger-check

docs:          ## regenerate docs/asyncapi.json, docs/events/*.schema.json, the chart's Kafka ACLs and its Grafana dashboards
	@$(VENV)/python -m servicekit.catalogue
	@$(VENV)/python deploy/grafana/dashboards.py

bench: bench-store bench-consumer bench-api bench-otp bench-payment bench-stores bench-ledger

bench-store:   ## FerretDB on PostgreSQL vs SQLite, per operation
	@bench/store_backends.sh

bench-bus-auth: ## the kit's producer and consumer rates with and without authentication on the bus
	@$(VENV)/python bench/bus_auth.py

bench-consumer: ## kit consumer vs hand-written aiokafka loop, same work
	@$(VENV)/python bench/consumer_throughput.py

bench-api:     ## GET /api/v1/me/balances through nginx vs the service directly
	@$(VENV)/python bench/api_latency.py

bench-otp:     ## POST /auth/otp answer time, subscribers vs other numbers (no timing oracle)
	@$(VENV)/python bench/otp_timing.py

bench-payment: ## card top-ups, provider notification -> credited balance, 50 concurrent
	@$(VENV)/python bench/payment_flow.py

bench-stores:  ## nearest-store lookups through the gateway vs a brute-force scan
	@$(VENV)/python bench/stores_nearest.py

bench-loyalty: ## loyalty: TopupRecorded -> points ledger entries vs bare consume; transfers through the gateway
	@$(VENV)/python bench/loyalty_earning.py
	@$(VENV)/python bench/loyalty_transfers.py

bench-ledger:  ## account ledger: usage records applied/s vs a bare loop appending the same journal (target >= 0.5x)
	@$(VENV)/python bench/ledger_usage.py --old

bench-grants:  ## account ledger: VAS data-pack charges and loyalty rewards vs top-ups
	@$(VENV)/python bench/ledger_grants.py

bench-vas:     ## one VAS renewal pass over SUBS (100,000) due subscriptions, to the account service and back
	@$(VENV)/python bench/vas_renewals.py --subscriptions $${SUBS:-100000}

bench-notify:  ## one promotion to 1,000,000 seeded devices vs a bare HTTP/2 sender (DEVICES=...)
	@$(VENV)/python bench/notify_fanout.py --devices $${DEVICES:-1000000}

clean: down
	rm -rf .cache/data .cache/logs .cache/run
