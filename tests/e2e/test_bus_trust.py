"""Who may write what on the platform's broker: nobody without credentials, each principal only
the topics it produces (the ACLs `servicekit.kafka.admin` derived from the contracts), and the
operators read without writing. Each write that must be refused is tried for real."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from mobi_contracts import CONSUMER_GROUPS, TOPICS
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.acls import OPS
from servicekit.testing import KAFKA, kafka_access

pytestmark = pytest.mark.e2e
SERVICES = sorted({g.owner for g in CONSUMER_GROUPS})
OUTSIDE_PARTIES = ["campaign-tools", "ocs-mediation"]


async def try_write(options: dict[str, Any], topic: str) -> str:
    """'written', 'unauthorized' or 'refused' (no connection: not authenticated)."""
    producer = AIOKafkaProducer(request_timeout_ms=10_000, metadata_max_age_ms=5_000, **options)
    try:
        await asyncio.wait_for(producer.start(), timeout=20)
    except (KafkaConnectionError, ssl.SSLError, OSError, TimeoutError) as exc:
        return f"refused: {type(exc).__name__}"
    try:
        # A record that would be dead-lettered as malformed were it ever written.
        await asyncio.wait_for(producer.send_and_wait(topic, b"not an event", key=b"84900000000"), timeout=20)
        return "written"
    except TopicAuthorizationFailedError:
        return "unauthorized"
    except (KafkaError, TimeoutError) as exc:
        return f"refused: {type(exc).__name__}"
    finally:
        await producer.stop()


async def test_a_plain_producer_without_credentials_cannot_write_any_topic() -> None:
    outcomes = {t.name: await try_write({"bootstrap_servers": KAFKA}, t.name) for t in TOPICS}
    assert all(o.startswith("refused") for o in outcomes.values()), outcomes


async def test_a_client_with_a_wrong_password_is_not_let_in() -> None:
    real = kafka_access("payment-service")
    wrong = KafkaAccess(real.bootstrap, real.principal, "not-the-password", real.ca_file)
    assert (await try_write(wrong.aiokafka(), "payment.events.v1")).startswith("refused")


@pytest.mark.parametrize("principal", SERVICES + OUTSIDE_PARTIES)
async def test_a_principal_cannot_write_a_topic_it_does_not_produce(principal: str) -> None:
    options = kafka_access(principal).aiokafka()
    others = [t.name for t in TOPICS if principal not in t.producers]
    others += [g.dead_letter.name for g in CONSUMER_GROUPS if g.owner != principal]
    outcomes = {topic: await try_write(options, topic) for topic in others}
    assert set(outcomes.values()) == {"unauthorized"}, outcomes


async def test_the_operators_read_but_cannot_write() -> None:
    options = kafka_access(OPS).aiokafka()
    assert await try_write(options, "payment.events.v1") == "unauthorized"
    assert await try_write(options, "promotions.v1") == "unauthorized"
