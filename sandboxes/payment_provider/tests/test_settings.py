from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from payment_provider_sandbox import Settings


def test_defaults_match_the_platform_wiring(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PAYPROV_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8192)
    assert settings.tmn_code == "MYMOBI01"
    assert settings.secret == "sandbox-hash-secret-change-me"
    assert settings.ipn_url == "http://127.0.0.1:8080/api/v1/payments/provider/ipn"
    assert settings.ipn_method == "POST"
    assert settings.ipn_retry_delays_s == [0.2, 1.0, 3.0, 10.0, 30.0, 60.0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.2, 1,3", [0.2, 1.0, 3.0]), ("[0.5, 2]", [0.5, 2.0]), ("", []), ("[]", [])],
)
def test_retry_schedule_reads_commas_or_json(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[float]
) -> None:
    monkeypatch.setenv("PAYPROV_IPN_RETRY_DELAYS_S", raw)
    assert Settings().ipn_retry_delays_s == expected


def test_negative_retry_delay_and_unknown_ipn_method_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYPROV_IPN_RETRY_DELAYS_S", "1,-1")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("PAYPROV_IPN_RETRY_DELAYS_S", "1")
    monkeypatch.setenv("PAYPROV_IPN_METHOD", "PUT")
    with pytest.raises(ValidationError):
        Settings()


def test_secret_is_not_shown_in_the_settings_repr() -> None:
    assert "sandbox-hash-secret-change-me" not in repr(Settings())
