"""No default secret outside the laptop; clients limited by the unit they really control."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from servicekit.http import address_block
from servicekit.settings import KitSettings

STRONG = "x7Qm2vL9pR4tW8yB3nF6hJ1kZ5cV0sDa"  # 32 bytes, no default marker


class PaymentLike(KitSettings):
    service_name: str = "payment-service"
    provider_hash_secret: SecretStr = SecretStr("sandbox-hash-secret-change-me")
    smsc_password: SecretStr = SecretStr("smsc-pwd")
    SHORT_SECRETS = frozenset({"smsc_password"})


def production(**secrets: str) -> PaymentLike:
    values = {
        "provider_hash_secret": STRONG,
        "smsc_password": "Zq8!kP2w",
        "gateway_key": STRONG,
        "kafka_password": STRONG,
    } | secrets
    return PaymentLike(environment="production", **values)  # type: ignore[arg-type]


def test_the_local_profile_runs_on_the_shipped_defaults() -> None:
    settings = PaymentLike()
    assert settings.own_gateway_key == "local-gateway-key-payment-service"
    assert settings.own_internal_key == "local-internal-key-payment-service"
    assert settings.accepted_internal_keys["ops"] == "local-internal-key-ops"


def test_production_starts_with_strong_secrets_and_accepts_no_local_caller_key() -> None:
    settings = production()
    assert settings.own_gateway_key == STRONG
    assert settings.accepted_internal_keys == {}


@pytest.mark.parametrize(
    ("secrets", "complaint"),
    [
        (
            {"provider_hash_secret": "sandbox-hash-secret-change-me"},
            "provider_hash_secret is a known default",
        ),
        ({"provider_hash_secret": "short-but-real-value"}, "provider_hash_secret is shorter than 32 bytes"),
        ({"provider_hash_secret": ""}, "provider_hash_secret is not set"),
        ({"gateway_key": ""}, "gateway_key is not set"),
        ({"gateway_key": "local-gateway-key-payment-service-padding"}, "gateway_key is a known default"),
        ({"smsc_password": "smsc-pwd"}, "smsc_password is a known default"),
        ({"internal_caller_keys": {"ops": "tiny"}}, "internal_caller_keys[ops] is shorter than 32 bytes"),
    ],
)
def test_outside_local_a_default_short_or_missing_secret_stops_the_start(
    secrets: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        production(**secrets)  # type: ignore[arg-type]
    assert complaint in str(refused.value)


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_is_limited_per_64_and_ipv4_per_address(address: str, block: str) -> None:
    assert address_block(address) == block


def secret_volume(root: Path, files: dict[str, str]) -> Path:
    """A directory laid out as Kubernetes mounts a Secret volume: every entry a link into the
    current `..data` directory (the atomic-update layout), which holds the files."""
    data = root / "..2026_12_07_21_00_00.000000001"
    for relative, text in files.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text(text + "\n")
    (root / "..data").symlink_to(data.name)
    for top in {relative.split("/")[0] for relative in files}:
        (root / top).symlink_to(f"..data/{top}")
    return root


def test_secrets_come_from_files_in_the_secrets_dir_dicts_from_subdirectories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "p3Rk8sW1qZ6vN0tY4bH7mC2xJ5gL9dFa"
    volume = secret_volume(
        tmp_path,
        {
            "mongodb_url": "mongodb://svc:pw@mongo-0.mongo:27017/",
            "gateway_key": STRONG,
            "kafka_password": STRONG,
            "provider_hash_secret": other,
            "smsc_password": "Zq8!kP2w",
            "internal_caller_keys/ops": other,
            "internal_caller_keys/payment-service": STRONG,
        },
    )
    monkeypatch.setenv("SECRETS_DIR", str(volume))
    settings = PaymentLike(environment="production")
    assert settings.mongodb_url == "mongodb://svc:pw@mongo-0.mongo:27017/"
    assert settings.own_gateway_key == STRONG
    assert settings.provider_hash_secret.get_secret_value() == other  # a trailing newline is dropped
    assert settings.accepted_internal_keys == {"ops": other, "payment-service": STRONG}


def test_an_environment_variable_wins_over_the_secrets_dir_and_a_missing_dir_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "SECRETS_DIR", str(secret_volume(tmp_path / "volume", {"redis_url": "redis://file:6379/0"}))
    )
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    assert PaymentLike().redis_url == "redis://env:6379/0"
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(SettingsError, match="does not exist"):
        PaymentLike()


def test_secrets_in_files_are_held_to_the_same_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume = secret_volume(
        tmp_path, {"gateway_key": STRONG, "kafka_password": STRONG, "provider_hash_secret": "short"}
    )
    monkeypatch.setenv("SECRETS_DIR", str(volume))
    with pytest.raises(ValidationError, match="provider_hash_secret is shorter than 32 bytes"):
        PaymentLike(environment="production", smsc_password="Zq8!kP2w")
