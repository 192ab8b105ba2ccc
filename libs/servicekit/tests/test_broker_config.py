"""The broker takes no anonymous client: every listener authenticates, and only the broker and
admin are super users."""

from __future__ import annotations

from pathlib import Path

from servicekit.kafka.broker_config import format_scram_arguments, server_properties
from servicekit.kafka.credentials import generate


def properties(secrets: Path) -> dict[str, str]:
    text = server_properties(secrets, log_dirs="/data")
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_no_listener_takes_an_unauthenticated_client(tmp_path: Path) -> None:
    generate(tmp_path)
    conf = properties(tmp_path)
    protocols = dict(pair.split(":") for pair in conf["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_SSL", "SSL"}
    for listener in conf["listeners"].split(","):
        assert protocols[listener.split("://")[0]] in ("SASL_SSL", "SSL")
    assert conf["listener.name.controller.ssl.client.auth"] == "required"
    assert conf["allow.everyone.if.no.acl.found"] == "false"
    assert conf["super.users"] == "User:broker;User:admin"
    assert conf["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"


def test_the_super_users_are_made_at_format_time_with_their_generated_passwords(tmp_path: Path) -> None:
    generate(tmp_path)
    arguments = format_scram_arguments(tmp_path)
    admin = (tmp_path / "users" / "admin").read_text()
    assert arguments[0] == "--add-scram" and f"name=admin,password={admin}" in arguments[1]
    assert "name=broker" in arguments[3]


def test_secrets_are_private_and_generated_once(tmp_path: Path) -> None:
    generate(tmp_path)
    first = (tmp_path / "users" / "account-service").read_text()
    assert generate(tmp_path) == []
    assert (tmp_path / "users" / "account-service").read_text() == first
    assert (tmp_path / "users" / "account-service").stat().st_mode & 0o077 == 0
    assert (tmp_path / "broker.p12").stat().st_mode & 0o077 == 0


def test_a_proxied_listener_authenticates_too_and_advertises_the_proxy(tmp_path: Path) -> None:
    """The fault drill's second listener: a client bootstrapped through the proxy is told the
    proxy's address, so its connections keep going through the proxy; the first listener stays."""
    generate(tmp_path)
    text = server_properties(tmp_path, log_dirs="/data", proxied_port=9094, proxy_port=19092)
    conf = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert conf["listeners"].split(",") == [
        "SASL_SSL://127.0.0.1:9092",
        "CONTROLLER://127.0.0.1:9093",
        "PROXIED://127.0.0.1:9094",
    ]
    assert conf["advertised.listeners"] == "SASL_SSL://127.0.0.1:9092,PROXIED://127.0.0.1:19092"
    assert "PROXIED:SASL_SSL" in conf["listener.security.protocol.map"].split(",")
    assert "ScramLoginModule" in conf["listener.name.proxied.scram-sha-512.sasl.jaas.config"]
    assert "PROXIED" not in properties(tmp_path)["listeners"]  # only when asked for
