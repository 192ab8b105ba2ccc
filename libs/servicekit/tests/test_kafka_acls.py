"""The bus's ACLs follow from the contracts: each principal writes only the topics it produces
and reads only what its consumer group consumes; ops reads and never writes."""

from __future__ import annotations

from mobi_contracts import CONSUMER_GROUPS, TOPICS
from servicekit.kafka.acls import ADMIN, OPS, TESTS, grants, principals


def writers(topic: str, local: bool = False) -> set[str]:
    return {
        g.principal
        for g in grants(local=local)
        if g.resource == "topic"
        and g.operation == "write"
        and g.pattern == "literal"
        and g.name in (topic, "*")
    }


def test_only_a_topics_producers_may_write_it() -> None:
    for topic in TOPICS:
        assert writers(topic.name) == set(topic.producers), topic.name


def test_only_the_service_that_owns_a_dead_letter_topic_writes_it() -> None:
    for group in CONSUMER_GROUPS:
        assert writers(group.dead_letter.name) == {group.owner}


def test_a_service_reads_exactly_the_topics_its_groups_consume_and_its_own_groups() -> None:
    for owner in {g.owner for g in CONSUMER_GROUPS}:
        groups = [g for g in CONSUMER_GROUPS if g.owner == owner]
        mine = [g for g in grants(local=False) if g.principal == owner and g.operation == "read"]
        assert {g.name for g in mine if g.resource == "topic"} == {t.name for g in groups for t in g.topics}
        assert {g.name for g in mine if g.resource == "group"} == {g.name for g in groups}


def test_the_account_ledgers_usage_lane_is_a_group_of_the_account_service() -> None:
    lane = next(g for g in CONSUMER_GROUPS if g.name == "account-usage")
    assert lane.owner == "account-service"
    assert "account-usage" not in principals(local=False)


def test_ops_reads_everything_and_writes_nothing() -> None:
    ops = [g for g in grants(local=False) if g.principal == OPS]
    assert {(g.resource, g.name, g.operation) for g in ops if g.operation == "read"} == {
        ("topic", "*", "read"),
        ("group", "*", "read"),
    }
    assert not [g for g in ops if g.operation in ("write", "create", "delete")]


def test_the_test_harness_is_confined_to_its_own_prefixes_and_absent_from_production() -> None:
    harness = [g for g in grants(local=True) if g.principal == TESTS]
    assert harness and all(
        g.pattern == "prefixed" and g.name.startswith(("test", "dlq.test")) for g in harness
    )
    assert TESTS not in principals(local=False)
    assert not [g for g in grants(local=False) if g.principal == TESTS]


def test_no_grant_uses_a_wildcard_but_the_operators_reads() -> None:
    wild = [g for g in grants(local=False) if g.name == "*"]
    assert {g.principal for g in wild} == {OPS}


def test_every_producer_and_group_has_a_principal_and_admin_is_one() -> None:
    names = set(principals(local=False))
    assert {p for t in TOPICS for p in t.producers} <= names
    assert {g.owner for g in CONSUMER_GROUPS} <= names
    assert ADMIN in names
