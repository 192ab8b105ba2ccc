"""The platform's event catalogue, generated from `mobi_contracts` (`make docs`):

- docs/asyncapi.json: every topic, its key, partitions and the events on it (AsyncAPI 3.0,
  built by FastStream from the contract classes);
- docs/events/<Type>.v<N>.schema.json: the JSON Schema of each event;
- deploy/helm/mymobifone/files/kafka-users.json: the bus's ACLs (servicekit.kafka.acls) as
  Strimzi KafkaUser `acls`, which the chart renders per principal.

`--check` exits non-zero when the committed files differ from what the code generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from mobi_contracts import CONSUMER_GROUPS, TOPICS, channel_title

from .kafka.acls import strimzi_users


def asyncapi_document() -> dict[str, object]:
    broker = KafkaBroker("kafka:9092", description="Apache Kafka (KRaft); topics are created from contracts")
    for topic in TOPICS:
        for event in topic.events:
            broker.publisher(
                topic.name,
                schema=event,
                title=channel_title(topic, event),
                description=(
                    f"{event.EVENT_TYPE} v{event.EVENT_VERSION} on {topic.name} "
                    f"({topic.partitions} partitions, retention {topic.retention_ms // 86_400_000} days), "
                    f"produced by {topic.producer}. "
                    f"Key: {topic.key}. {topic.description}"
                ),
            )
    for group in CONSUMER_GROUPS:
        dlq = group.dead_letter
        broker.publisher(dlq.name, title=f"{dlq.name}:dead-letter", description=dlq.description)
    spec = AsyncAPI(
        broker,
        title="My MobiFone events",
        version="1.0.0",
        description="Integration events between the platform's services. Every event is an envelope "
        "(event_id, event_type, event_version, occurred_at, producer, correlation_id, causation_id, "
        "subject) around its data; the subject (MSISDN) is the Kafka key.",
    )
    document: dict[str, object] = spec.to_specification().to_jsonable()
    return document


def event_schemas() -> dict[str, dict[str, object]]:
    return {
        f"{event.EVENT_TYPE}.v{event.EVENT_VERSION}.schema.json": event.model_json_schema()
        for topic in TOPICS
        for event in topic.events
    }


def render(root: Path) -> dict[Path, str]:
    files = {root / "asyncapi.json": json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"}
    for name, schema in event_schemas().items():
        files[root / "events" / name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    # The bus's ACLs as Strimzi KafkaUsers, for the chart (beside docs/: <root>/../deploy/...).
    users = root.parent / "deploy" / "helm" / "mymobifone" / "files" / "kafka-users.json"
    files[users] = json.dumps(strimzi_users(), indent=2, sort_keys=True) + "\n"
    return files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in render(args.out).items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `make docs`): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
