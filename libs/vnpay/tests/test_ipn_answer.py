from __future__ import annotations

import json

import pytest

from vnpay import BadSignature, InvalidMessage, IpnAnswer, Malformed, Stale


@pytest.mark.parametrize(
    ("answer", "code", "final"),
    [
        (IpnAnswer.confirm_success(), "00", True),
        (IpnAnswer.order_not_found(), "01", False),
        (IpnAnswer.already_confirmed(), "02", True),
        (IpnAnswer.invalid_amount(), "04", False),
        (IpnAnswer.invalid_signature(), "97", False),
        (IpnAnswer.unknown_error(), "99", False),
    ],
)
def test_answers_serialise_to_the_provider_json_shape(answer: IpnAnswer, code: str, final: bool) -> None:
    body = json.loads(answer.to_json())
    assert body["RspCode"] == code
    assert set(body) == {"RspCode", "Message"}
    assert answer.is_final is final


def test_confirm_success_uses_the_provider_wording() -> None:
    assert IpnAnswer.confirm_success().to_dict() == {"RspCode": "00", "Message": "Confirm Success"}


@pytest.mark.parametrize(
    ("error", "code"),
    [(BadSignature("x"), "97"), (Stale("x"), "97"), (Malformed("x"), "99")],
)
def test_refused_messages_map_to_answers(error: InvalidMessage, code: str) -> None:
    assert IpnAnswer.for_error(error).rsp_code == code


def test_a_merchant_answer_can_be_parsed_back() -> None:
    assert IpnAnswer.model_validate({"RspCode": "02", "Message": "x"}).is_final
