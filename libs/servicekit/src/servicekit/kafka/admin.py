"""Creates the declared topics (auto-create is off on the broker). `python -m servicekit.kafka.admin`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mobi_contracts import Topic, all_topics

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


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the Kafka topics declared in mobi_contracts")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1")),
        help="replicas per partition: 1 on a single local broker, 3 in production",
    )
    args = parser.parse_args()
    created = asyncio.run(ensure_topics(args.bootstrap, all_topics(), args.replication_factor))
    names = ", ".join(created) if created else "none (all exist)"
    print(f"topics created: {names}")


if __name__ == "__main__":
    main()
