"""Card numbers never reach the sandbox's state, journal, logs, metrics or error answers."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from payment_provider_sandbox.cards import TEST_CARDS, mask
from payment_provider_sandbox.logs import JsonFormatter

from .conftest import Merchant, sandbox_env


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def test_mask_keeps_only_the_first_six_and_last_four_digits() -> None:
    assert mask("4111111111111111") == "411111******1111"
    assert mask("9704198526191432198") == "970419*********2198"


async def test_no_full_card_number_in_state_journal_logs_or_answers(
    merchant: Merchant, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    seen: list[str] = []
    async with sandbox_env(merchant, tmp_path) as env:
        for card in TEST_CARDS:
            order = env.order(bank_code=None)
            response = await env.http.post(
                f"{env.base_url}/sandbox/pay",
                json={"payment_url": env.url(order), "card": card.number, "otp": "123456"},
            )
            seen.append(response.text)
        # Refusals and validation errors must not echo the card either.
        for body in (
            {"payment_url": 12, "card": "4111111111111111"},
            {"payment_url": env.url(env.order()), "card": "4111111111111112"},
            {"payment_url": env.url(env.order()), "card": ["4111111111111111"]},
        ):
            seen.append((await env.http.post(f"{env.base_url}/sandbox/pay", json=body)).text)
        await env.settled()
        for path in ("/sandbox/transactions", "/sandbox/notifications", "/metrics"):
            seen.append((await env.http.get(f"{env.base_url}{path}")).text)
        transactions = (await env.http.get(f"{env.base_url}/sandbox/transactions")).json()

    journal = (tmp_path / "journal.jsonl").read_text()
    logs = captured_logs.getvalue()
    assert "payment decided" in logs and "transaction_completed" in journal
    everything = "\n".join([*seen, journal, logs])
    for card in [*TEST_CARDS, "4111111111111112"]:
        number = card if isinstance(card, str) else card.number
        assert number not in everything, number
    assert {t["masked_card"] for t in transactions if t["masked_card"]} == {
        mask(c.number) for c in TEST_CARDS
    }
    assert not re.search(r"\d{13,}", logs), "a card-length digit run reached the logs"
