"""`notify-promo`: campaign teams publish a promotion from a JSON file.

    notify-promo validate campaign.json
    notify-promo publish campaign.json        # onto promotions.v1 (KAFKA_BOOTSTRAP)
    notify-promo stats <promotion-id>         # delivery stats from notify (NOTIFY_URL)

The file holds the event's data (contracts/examples/PromotionPublished/v1.json, "data").
Errors name the field and the problem, one per line, and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import httpx
from pydantic import ValidationError

from mobi_contracts.events.notify import PromotionPublished, PromotionPublishedData
from mobi_contracts.topics import PROMOTIONS
from servicekit.internal_keys import caller_headers
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.publisher import EventPublisher

PRODUCER = "campaign-tools"


class Invalid(Exception):
    pass


def load(path: Path) -> PromotionPublishedData:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise Invalid(f"{path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise Invalid(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict) and "event_type" in raw:
        raw = raw["data"]  # a whole event envelope: take its data
    try:
        return PromotionPublishedData.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(the campaign)"
            lines.append(f"  {where}: {str(err['msg']).removeprefix('Value error, ')}")
        raise Invalid(f"{path}: {len(lines)} problem(s):\n" + "\n".join(lines)) from exc


async def publish(data: PromotionPublishedData, bootstrap: str) -> PromotionPublished:
    """Publish as the campaign teams' own Kafka principal (`campaign-tools`): it may write
    promotions.v1 and nothing else (KAFKA_PASSWORD_FILE / KAFKA_CA_FILE in a cluster)."""
    event = PromotionPublished.create(
        data=data, producer=PRODUCER, correlation_id=f"promo-{data.promotion_id}-{uuid.uuid4().hex[:8]}"
    )
    publisher = EventPublisher(KafkaAccess.from_environment(PRODUCER, bootstrap), PRODUCER)
    await publisher.start()
    try:
        await publisher.publish(PROMOTIONS.name, [event])
    finally:
        await publisher.stop()
    return event


def stats(promotion_id: str, notify_url: str) -> dict[str, object]:
    key = os.environ.get("CAMPAIGN_TOOLS_INTERNAL_KEY") or None
    r = httpx.get(
        f"{notify_url}/internal/v1/promotions/{promotion_id}/stats",
        headers=caller_headers(PRODUCER, key),
        timeout=10,
        trust_env=False,
    )
    if r.status_code != 200:
        raise Invalid(f"notify answered {r.status_code}: {r.text}")
    result: dict[str, object] = r.json()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notify-promo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("validate", "publish"):
        cmd = sub.add_parser(name)
        cmd.add_argument("campaign", type=Path, help="campaign JSON file")
    sub.choices["publish"].add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    st = sub.add_parser("stats")
    st.add_argument("promotion_id")
    st.add_argument("--notify-url", default=os.environ.get("NOTIFY_URL", "http://127.0.0.1:8105"))
    args = parser.parse_args(argv)
    try:
        if args.command == "stats":
            print(json.dumps(stats(args.promotion_id, args.notify_url), indent=2))
            return 0
        data = load(args.campaign)
        if args.command == "validate":
            print(f"{args.campaign}: valid promotion {data.promotion_id}")
            return 0
        event = asyncio.run(publish(data, args.bootstrap))
        print(f"published {data.promotion_id} (event {event.event_id}) on {PROMOTIONS.name}")
        return 0
    except Invalid as exc:
        print(str(exc), file=sys.stderr)
        return 2


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
