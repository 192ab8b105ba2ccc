"""Kafka administration from the declarations in `mobi_contracts`.

    python -m servicekit.kafka.admin                       # create the declared topics
    python -m servicekit.kafka.admin --reset-offsets GROUP  # replay: GROUP from the earliest offsets

Resetting a group's offsets is how an operator replays its topics (after an incident, or to
re-run dead letters put back on the topic); every money consumer treats a replay as a no-op
(tests/e2e/test_zzz_ledger.py). Stop the group's consumers first: Kafka refuses to move the
offsets of a group that has members.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from mobi_contracts import CONSUMER_GROUPS, Topic, all_topics

log = logging.getLogger(__name__)


def topic_configs(topic: Topic, replication_factor: int) -> dict[str, str]:
    """The topic's own settings, plus how many replicas must confirm a write.

    Producers send with acks=all; with 3 replicas, min.insync.replicas=2 makes an
    acknowledged event survive the loss of any one broker while writes go on during one
    broker's restart.
    """
    return {**topic.config(), "min.insync.replicas": str(max(1, min(2, replication_factor - 1)))}


async def ensure_topics(bootstrap: str, topics: Iterable[Topic], replication_factor: int = 1) -> list[str]:
    """Create missing topics; returns the names created. Existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=replication_factor,
                topic_configs=topic_configs(t, replication_factor),
            )
            for t in missing
        ]
        response = await admin.create_topics(new)
        created = []
        for name, code, message in getattr(response, "topic_errors", []):
            if code in (0, TopicAlreadyExistsError.errno):
                created.append(name)
            else:
                raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
        return created
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="topic-admin")
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def reset_to_earliest(bootstrap: str, group: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """Commit the earliest offset of every partition of `topics` for `group` (no members may run)."""
    partitions = await partitions_of(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        earliest = await consumer.beginning_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in earliest.items()})
        return dict(earliest)
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1")),
        help="replicas per partition: 1 on a single local broker, 3 in production",
    )
    parser.add_argument("--reset-offsets", metavar="GROUP", help="move GROUP to the earliest offsets")
    args = parser.parse_args()
    if args.reset_offsets:
        group = next((g for g in CONSUMER_GROUPS if g.name == args.reset_offsets), None)
        if group is None:
            parser.error(f"unknown consumer group {args.reset_offsets!r}")
        moved = asyncio.run(reset_to_earliest(args.bootstrap, group.name, [t.name for t in group.topics]))
        print(f"{group.name}: {len(moved)} partitions reset to the earliest offset")
        return
    created = asyncio.run(ensure_topics(args.bootstrap, all_topics(), args.replication_factor))
    names = ", ".join(created) if created else "none (all exist)"
    print(f"topics created: {names}")


if __name__ == "__main__":
    main()
