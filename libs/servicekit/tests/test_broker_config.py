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
