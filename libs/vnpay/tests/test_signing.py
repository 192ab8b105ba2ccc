from __future__ import annotations

import hmac

import pytest

from vnpay import canonical_query, sign, verify, with_signature

# Published by an independent implementation (the `vnpay` npm package's test suite, secret
# "test_secret"): if our canonical form drifted from VNPay's, these hashes would not match.
PUBLISHED_PARAMS = {
    "vnp_Amount": "1000000",
    "vnp_BankCode": "NCB",
    "vnp_BankTranNo": "VNP14422574",
    "vnp_CardType": "ATM",
    "vnp_OrderInfo": "Thanh toan don hang 2024-05-21T02:17:31.249Z",
    "vnp_PayDate": "20240521091806",
    "vnp_ResponseCode": "00",
    "vnp_TmnCode": "TEST_TMN_CODE",
    "vnp_TransactionNo": "14422574",
    "vnp_TransactionStatus": "00",
    "vnp_TxnRef": "1716257871703",
}
PUBLISHED_HASH = (
    "649982421beb422556a1374713c74e58e716ecbd05007c0c0e1f7effdfaf361d"
    "bf146889ca446139afe11b9954c4d5c486e99e3b86fcfab6957f29eb0be72895"
)
PUBLISHED_HASH_WHEN_CODE_99 = (
    "503194f6d93b57b357b2d1d09742565e67e86d771352c5dca4fc8d39df3d392c"
    "6b3809add9405f97cfb9631f445e36c80656cfbf47eac67d97fa165865c13e1b"
)


def signed() -> dict[str, str]:
    return {**PUBLISHED_PARAMS, "vnp_SecureHash": PUBLISHED_HASH}


def test_sign_reproduces_published_vectors() -> None:
    assert sign(PUBLISHED_PARAMS, "test_secret") == PUBLISHED_HASH
    assert sign({**PUBLISHED_PARAMS, "vnp_ResponseCode": "99"}, "test_secret") == PUBLISHED_HASH_WHEN_CODE_99


def test_canonical_query_sorts_keys_quotes_plus_and_drops_empty_values() -> None:
    params = {"vnp_b": "x y/z", "vnp_a": "1", "vnp_Empty": "", "vnp_C": "Đ&="}
    assert canonical_query(params) == "vnp_C=%C4%90%26%3D&vnp_a=1&vnp_b=x+y%2Fz"


def test_hash_fields_and_non_vnp_parameters_are_outside_the_signature() -> None:
    base = sign(PUBLISHED_PARAMS, "test_secret")
    decorated = {**PUBLISHED_PARAMS, "vnp_SecureHashType": "HmacSHA512", "utm_source": "app", "lang": "vi"}
    assert sign(decorated, "test_secret") == base


def test_verify_accepts_published_notification() -> None:
    assert verify(signed(), "test_secret")


def test_verify_accepts_upper_case_hex() -> None:
    params = signed()
    params["vnp_SecureHash"] = params["vnp_SecureHash"].upper()
    assert verify(params, "test_secret")


@pytest.mark.parametrize("field", sorted(PUBLISHED_PARAMS))
def test_verify_refuses_any_changed_field(field: str) -> None:
    params = signed()
    params[field] = params[field] + "0"
    assert not verify(params, "test_secret")


@pytest.mark.parametrize("field", sorted(PUBLISHED_PARAMS))
def test_verify_refuses_any_dropped_field(field: str) -> None:
    params = signed()
    del params[field]
    assert not verify(params, "test_secret")


def test_verify_refuses_an_extra_vnp_field() -> None:
    assert not verify({**signed(), "vnp_Extra": "1"}, "test_secret")


def test_verify_refuses_wrong_secret_missing_hash_and_garbage_hash() -> None:
    assert not verify(signed(), "other-secret")
    assert not verify(PUBLISHED_PARAMS, "test_secret")
    assert not verify({**PUBLISHED_PARAMS, "vnp_SecureHash": "zz\u00e9"}, "test_secret")


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify(signed(), "test_secret")
    assert len(calls) == 1


def test_with_signature_adds_a_verifiable_hash_and_drops_empty_values() -> None:
    params = with_signature({**PUBLISHED_PARAMS, "vnp_BankTranNo": ""}, "s3cret")
    assert "vnp_BankTranNo" not in params
    assert verify(params, "s3cret")
