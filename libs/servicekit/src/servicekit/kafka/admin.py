"""Kafka administration from the declarations in `mobi_contracts`.

    python -m servicekit.kafka.admin                       # users, ACLs and topics (make topics)
    python -m servicekit.kafka.admin --reset-offsets GROUP  # replay: GROUP from the earliest offsets
    python -m servicekit.kafka.admin --acls                 # print the ACLs the contracts imply

The admin tool connects as `admin` (a super user of the broker). It makes every principal's
SCRAM user (the local passwords of `servicekit.kafka.credentials`), grants exactly the ACLs
of `servicekit.kafka.acls` (and revokes grants those no longer imply), then creates the
declared topics. In a cluster, users and ACLs are the operator's (Strimzi `KafkaUser`s
rendered by the chart from the same derivation); the chart's topics job creates the topics.

Resetting a group's offsets is how an operator replays its topics (after an incident, or to
re-run dead letters put back on the topic); every money consumer treats a replay as a no-op
(tests/e2e/test_zzz_ledger.py). It runs as `ops`. Stop the group's consumers first: Kafka
refuses to move the offsets of a group that has members.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata
from confluent_kafka import admin as rdk

from mobi_contracts import CONSUMER_GROUPS, TOPICS, Topic, all_topics

from .access import KafkaAccess, local_secrets_dir, password_path
from .acls import ADMIN, OPS, Grant, grants, principals

log = logging.getLogger(__name__)
SCRAM_ITERATIONS = 8192
_RESOURCE = {
    "topic": rdk.ResourceType.TOPIC,
    "group": rdk.ResourceType.GROUP,
    "cluster": rdk.ResourceType.BROKER,
}
_PATTERN = {"literal": rdk.ResourcePatternType.LITERAL, "prefixed": rdk.ResourcePatternType.PREFIXED}
_OPERATION = {
    "read": rdk.AclOperation.READ,
    "write": rdk.AclOperation.WRITE,
    "describe": rdk.AclOperation.DESCRIBE,
    "create": rdk.AclOperation.CREATE,
    "delete": rdk.AclOperation.DELETE,
    "describe_configs": rdk.AclOperation.DESCRIBE_CONFIGS,
}


def topic_configs(topic: Topic, replication_factor: int) -> dict[str, str]:
    """The topic's own settings, plus how many replicas must confirm a write.

    Producers send with acks=all; with 3 replicas, min.insync.replicas=2 makes an
    acknowledged event survive the loss of any one broker while writes go on during one
    broker's restart.
    """
    return {**topic.config(), "min.insync.replicas": str(max(1, min(2, replication_factor - 1)))}


def sized(
    topics: Iterable[Topic], partitions: int | None = None, retention_hours: int | None = None
) -> list[Topic]:
    """The declared topics at a cluster's size: every event topic with `partitions` (all of
    them alike: a group's topics are co-partitioned, servicekit.kafka.assignor) and, when it
    has the default retention, `retention_hours`; a topic declared to be kept longer (the
    lifecycle's month) and the dead-letter topics (one partition, a month) stay as declared."""
    events = {t.name for t in TOPICS}
    default_retention = Topic.__dataclass_fields__["retention_ms"].default
    result = []
    for topic in topics:
        if topic.name in events:
            if partitions is not None:
                topic = dataclasses.replace(topic, partitions=partitions)
            if retention_hours is not None and topic.retention_ms == default_retention:
                topic = dataclasses.replace(topic, retention_ms=retention_hours * 3600 * 1000)
        result.append(topic)
    return result


def _admin_client(access: KafkaAccess) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(client_id="topic-admin", **access.aiokafka())


async def ensure_topics(
    access: KafkaAccess, topics: Iterable[Topic], replication_factor: int = 1
) -> list[str]:
    """Create missing topics; returns the names created. Existing ones are left as they are."""
    admin = _admin_client(access)
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


def _binding(grant: Grant) -> rdk.AclBinding:
    return rdk.AclBinding(
        _RESOURCE[grant.resource],
        grant.name,
        _PATTERN[grant.pattern],
        f"User:{grant.principal}",
        "*",
        _OPERATION[grant.operation],
        rdk.AclPermissionType.ALLOW,
    )


def _wait(futures: dict[object, object], what: str) -> None:
    for key, future in futures.items():
        try:
            future.result()  # type: ignore[attr-defined]
        except Exception as exc:
            raise RuntimeError(f"{what} {key}: {exc}") from exc


def ensure_users(access: KafkaAccess, names: Sequence[str], passwords: dict[str, str]) -> None:
    """Create or update each principal's SCRAM-SHA-512 credential."""
    client = rdk.AdminClient(access.librdkafka())
    upserts = [
        rdk.UserScramCredentialUpsertion(
            name,
            rdk.ScramCredentialInfo(rdk.ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            passwords[name].encode(),
        )
        for name in names
        if name != ADMIN  # made when the broker's storage was formatted; its own password
    ]
    if upserts:
        _wait(client.alter_user_scram_credentials(upserts, request_timeout=30), "SCRAM user")


def sync_acls(access: KafkaAccess, wanted: Sequence[Grant]) -> tuple[int, int]:
    """Make the broker's ACLs exactly `wanted`: create the missing, delete the others.
    Returns (created, deleted)."""
    client = rdk.AdminClient(access.librdkafka())
    everything = rdk.AclBindingFilter(
        rdk.ResourceType.ANY,
        None,
        rdk.ResourcePatternType.ANY,
        None,
        None,
        rdk.AclOperation.ANY,
        rdk.AclPermissionType.ANY,
    )
    existing = set(client.describe_acls(everything, request_timeout=30).result())
    target = {_binding(g) for g in wanted}
    missing, stale = target - existing, existing - target
    if missing:
        _wait(client.create_acls(sorted(missing, key=str), request_timeout=30), "ACL")
    if stale:
        _wait(client.delete_acls(sorted(stale, key=str), request_timeout=30), "ACL removal")
    return len(missing), len(stale)


async def partitions_of(access: KafkaAccess, topics: Iterable[str]) -> list[TopicPartition]:
    admin = _admin_client(access)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def reset_to_earliest(
    access: KafkaAccess, group: str, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    """Commit the earliest offset of every partition of `topics` for `group` (no members may run)."""
    partitions = await partitions_of(access, topics)
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **access.aiokafka())
    await consumer.start()
    try:
        earliest = await consumer.beginning_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in earliest.items()})
        return dict(earliest)
    finally:
        await consumer.stop()


def set_up_access(admin: KafkaAccess) -> str:
    """Users and ACLs of the local platform (passwords from the local secrets directory)."""
    if not admin.authenticated:
        return "no authentication on this broker: users and ACLs skipped"
    names = principals()
    secrets = local_secrets_dir()
    passwords = {n: password_path(secrets, n).read_text().strip() for n in names if n != ADMIN}
    ensure_users(admin, names, passwords)
    created, deleted = sync_acls(admin, grants())
    return f"{len(names)} principals; ACLs: {created} created, {deleted} removed"


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
    parser.add_argument("--acls", action="store_true", help="print the ACLs the contracts imply and exit")
    parser.add_argument(
        "--topics-only", action="store_true", help="topics only (users and ACLs are the operator's)"
    )
    parser.add_argument(
        "--partitions", type=int, help="partitions of every event topic (default: the contracts', 3)"
    )
    parser.add_argument(
        "--retention-hours", type=int, help="retention of the event topics kept the default 7 days"
    )
    args = parser.parse_args()
    if args.acls:
        for grant in grants(local=False):
            print(f"{grant.principal}\t{grant.resource}\t{grant.pattern}\t{grant.name}\t{grant.operation}")
        return
    if args.reset_offsets:
        group = next((g for g in CONSUMER_GROUPS if g.name == args.reset_offsets), None)
        if group is None:
            parser.error(f"unknown consumer group {args.reset_offsets!r}")
        ops = KafkaAccess.local(OPS, args.bootstrap)
        moved = asyncio.run(reset_to_earliest(ops, group.name, [t.name for t in group.topics]))
        print(f"{group.name}: {len(moved)} partitions reset to the earliest offset")
        return
    admin = KafkaAccess.from_environment(ADMIN, args.bootstrap)
    if not args.topics_only:
        print(set_up_access(admin))
    topics = sized(all_topics(), args.partitions, args.retention_hours)
    created = asyncio.run(ensure_topics(admin, topics, args.replication_factor))
    names = ", ".join(created) if created else "none (all exist)"
    print(f"topics created: {names}")


if __name__ == "__main__":
    main()
