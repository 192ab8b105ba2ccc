"""Contracts stay compatible: recorded examples of every version still parse, every event
has an example, topics and keys are declared, and the generated docs are current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobi_contracts import (
    CONSUMER_GROUPS,
    EVENT_CLASSES,
    TOPICS,
    MalformedEvent,
    UnknownEvent,
    all_topics,
    parse_event,
)
from mobi_contracts.broadcast import BroadcastEnvelope
from mobi_contracts.events.payment import TopupRecorded

EXAMPLES = Path(__file__).parent.parent / "examples"


def recorded_examples() -> list[tuple[str, int, Path]]:
    return [
        (path.parent.name, int(path.stem.removeprefix("v")), path)
        for path in sorted(EXAMPLES.glob("*/v*.json"))
    ]


def test_every_registered_event_has_a_recorded_example() -> None:
    recorded = {(t, v) for t, v, _ in recorded_examples()}
    missing = set(EVENT_CLASSES) - recorded
    assert not missing, f"record an example in contracts/examples/<Type>/v<N>.json for {missing}"


@pytest.mark.parametrize(("event_type", "version", "path"), recorded_examples(), ids=lambda v: str(v))
def test_current_classes_still_parse_every_recorded_example(
    event_type: str, version: int, path: Path
) -> None:
    raw = path.read_bytes()
    versions = sorted(v for (t, v) in EVENT_CLASSES if t == event_type)
    assert version in versions, f"{event_type} v{version} was dropped while producers may still send it"
    event = parse_event(raw)
    assert event.event_type == event_type
    assert event.event_version == version
    assert json.loads(event.model_dump_json())["data"].keys() >= json.loads(raw)["data"].keys()


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    raw = json.loads((EXAMPLES / "TopupRecorded" / "v1.json").read_text())
    raw["data"]["bonus_vnd"] = 5000
    raw["trace"] = {"span": "x"}
    event = parse_event(json.dumps(raw).encode())
    assert isinstance(event, TopupRecorded)
    assert event.data.amount_vnd == 100000


def test_an_unknown_type_is_reported_as_unknown_not_malformed() -> None:
    raw = json.loads((EXAMPLES / "TopupRecorded" / "v1.json").read_text())
    raw["event_type"] = "TopupReversed"
    with pytest.raises(UnknownEvent):
        parse_event(json.dumps(raw).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"event_type": "TopupRecorded"}',
        b'{"event_id": "x", "event_type": 1, "event_version": 1}',
    ],
)
def test_garbage_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(raw)


def test_a_payload_that_breaks_its_schema_is_malformed() -> None:
    raw = json.loads((EXAMPLES / "TopupRecorded" / "v1.json").read_text())
    raw["data"]["amount_vnd"] = -5
    with pytest.raises(MalformedEvent, match="amount_vnd"):
        parse_event(json.dumps(raw).encode())


def test_the_class_refuses_an_envelope_of_another_type() -> None:
    raw = json.loads((EXAMPLES / "TopupRecorded" / "v1.json").read_text())
    raw["event_type"] = "BillPaid"
    with pytest.raises(ValueError, match="is not 'TopupRecorded'"):
        TopupRecorded.model_validate(raw)


def test_topics_are_unique_keyed_by_subscriber_and_groups_have_dead_letter_topics() -> None:
    names = [t.name for t in all_topics()]
    assert len(names) == len(set(names))
    for topic in TOPICS:
        assert topic.partitions >= 3
        # Keyed by the subscriber, except topics declared as not per subscriber (campaigns),
        # which carry only BroadcastEnvelope events (no subject; keyed by a data field).
        assert ("MSISDN" in topic.key) == topic.per_subscriber, topic.name
        for event in topic.events:
            assert issubclass(event, BroadcastEnvelope) != topic.per_subscriber, (topic.name, event)
    for group in CONSUMER_GROUPS:
        assert group.dead_letter.name == f"dlq.{group.name}"
        assert set(group.handles) <= {e for t in group.topics for e in t.events}


def test_event_key_is_the_subject() -> None:
    event = parse_event((EXAMPLES / "TopupRecorded" / "v1.json").read_bytes())
    assert event.key == b"84901234567"


def test_a_broadcast_event_has_no_subject_and_is_keyed_by_its_data() -> None:
    event = parse_event((EXAMPLES / "PromotionPublished" / "v1.json").read_bytes())
    assert isinstance(event, BroadcastEnvelope)
    assert event.subject is None
    assert event.key == b"tet-2027-data-x2"
