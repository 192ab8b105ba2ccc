"""Who may do what on the bus, derived from the topic and group declarations in `mobi_contracts`.

A principal is a service (its consumer group has its name), an outside producer a topic names
(`campaign-tools`, `ocs-mediation`), or an operator's tool:

- a topic's producers may WRITE it (and DESCRIBE it, to find its partitions);
- a consumer group's principal may READ the group and READ every topic the group consumes,
  and WRITE the group's dead-letter topic;
- `ops` may READ every topic and group (replays: `--reset-offsets`, reading dead letters) and
  nothing else; `admin` (topics, users, ACLs) and the broker itself are super users in the
  broker's configuration, so they need no grants here.

Nothing else is allowed (the broker runs with `allow.everyone.if.no.acl.found=false`): a
principal without a grant, or a client without credentials, cannot read or write anything.
`LOCAL_PRINCIPALS` are the test and benchmark harnesses of the local platform (their own
topic and group name prefixes only); the chart never creates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mobi_contracts import CONSUMER_GROUPS, TOPICS, ConsumerGroup, Topic

Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "describe", "create", "delete", "describe_configs"]

ADMIN = "admin"  # super user: creates topics, users and ACLs (make up, the chart's topics job)
BROKER = "broker"  # super user: the broker's own inter-broker and controller connections
OPS = "ops"  # operators: read everything, replay groups, write nothing
# Harnesses of the local platform, each confined to its own name prefixes.
TESTS = "tests"
BENCH = "bench"
LOCAL_PRINCIPALS = (TESTS, BENCH)
HARNESS_PREFIXES = {TESTS: ("test", "dlq.test"), BENCH: ("bench", "dlq.bench")}
WILDCARD = "*"


@dataclass(frozen=True, order=True)
class Grant:
    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"


def principals(
    topics: Iterable[Topic] = TOPICS, groups: Iterable[ConsumerGroup] = CONSUMER_GROUPS, *, local: bool = True
) -> list[str]:
    """Every principal that needs a password: producers, consumer groups, ops, admin (and the
    local harnesses). The broker's own is made when its storage is formatted."""
    names = {p for t in topics for p in t.producers} | {g.owner for g in groups} | {OPS, ADMIN}
    if local:
        names |= set(LOCAL_PRINCIPALS)
    return sorted(names)


def grants(
    topics: Iterable[Topic] = TOPICS, groups: Iterable[ConsumerGroup] = CONSUMER_GROUPS, *, local: bool = True
) -> list[Grant]:
    found: set[Grant] = set()
    for topic in topics:
        for producer in topic.producers:
            found |= _writes(producer, topic.name)
    for group in groups:
        found.add(Grant(group.owner, "group", group.name, "read"))
        found |= _writes(group.owner, group.dead_letter.name)
        for topic in group.topics:
            found |= {
                Grant(group.owner, "topic", topic.name, "read"),
                Grant(group.owner, "topic", topic.name, "describe"),
            }
    found |= {
        Grant(OPS, "topic", WILDCARD, "read"),
        Grant(OPS, "topic", WILDCARD, "describe"),
        Grant(OPS, "group", WILDCARD, "read"),
        Grant(OPS, "group", WILDCARD, "describe"),
        Grant(OPS, "cluster", "kafka-cluster", "describe"),
    }
    if local:
        for harness in LOCAL_PRINCIPALS:
            found |= _harness(harness)
    return sorted(found)


def _writes(principal: str, topic: str) -> set[Grant]:
    return {Grant(principal, "topic", topic, "write"), Grant(principal, "topic", topic, "describe")}


def _harness(principal: str) -> set[Grant]:
    """Everything on its own prefixes (tests make topics and groups of their own)."""
    found: set[Grant] = set()
    for prefix in HARNESS_PREFIXES[principal]:
        for operation in ("read", "write", "describe", "create", "delete", "describe_configs"):
            found.add(Grant(principal, "topic", prefix, operation, "prefixed"))
        found |= {
            Grant(principal, "group", prefix, "read", "prefixed"),
            Grant(principal, "group", prefix, "describe", "prefixed"),
            Grant(principal, "group", prefix, "delete", "prefixed"),
        }
    return found


# --- Strimzi: the same ACLs as KafkaUser resources (deploy/helm/mymobifone/files/kafka-users.json)
TOPICS_ADMIN = "mymobifone-topics"  # the chart's topics job: creates the declared topics only
_STRIMZI_OPERATION = {
    "read": "Read",
    "write": "Write",
    "describe": "Describe",
    "create": "Create",
    "delete": "Delete",
    "describe_configs": "DescribeConfigs",
}


def strimzi_users(
    topics: Iterable[Topic] = TOPICS, groups: Iterable[ConsumerGroup] = CONSUMER_GROUPS
) -> dict[str, object]:
    """{principal: [Strimzi `spec.authorization.acls` entries]} for every production principal
    but `admin` (the cluster's own), plus the topics job's user."""
    topics, groups = list(topics), list(groups)
    merged: dict[str, dict[tuple[str, str, str], set[str]]] = {}
    for grant in grants(topics, groups, local=False):
        key = (grant.resource, grant.name, grant.pattern)
        merged.setdefault(grant.principal, {}).setdefault(key, set()).add(_STRIMZI_OPERATION[grant.operation])
    declared = [t.name for t in topics] + [g.dead_letter.name for g in groups]
    merged[TOPICS_ADMIN] = {
        ("topic", name, "literal"): {"Create", "Describe", "DescribeConfigs"} for name in declared
    }
    return {
        principal: [_strimzi_acl(key, ops) for key, ops in sorted(acls.items())]
        for principal, acls in sorted(merged.items())
    }


def _strimzi_acl(key: tuple[str, str, str], operations: set[str]) -> dict[str, object]:
    resource, name, pattern = key
    spec: dict[str, object] = {"type": resource}
    if resource != "cluster":
        spec |= {"name": name, "patternType": pattern}
    return {"resource": spec, "operations": sorted(operations), "host": "*"}
