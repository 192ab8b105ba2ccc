"""Find the class for an event by (type, version) and parse raw bytes into it."""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from .envelope import AnyEvent
from .topics import TOPICS

EVENT_CLASSES: dict[tuple[str, int], type[AnyEvent]] = {
    (cls.EVENT_TYPE, cls.EVENT_VERSION): cls for topic in TOPICS for cls in topic.events
}


class UnknownEvent(Exception):
    """A well-formed envelope of a type/version this build does not know (not an error)."""

    def __init__(self, event_type: str, event_version: int) -> None:
        super().__init__(f"unknown event {event_type} v{event_version}")
        self.event_type = event_type
        self.event_version = event_version


class MalformedEvent(ValueError):
    """Not JSON, not an envelope, or a payload that fails its schema: a poison message."""


def parse_event(raw: bytes, known: dict[tuple[str, int], type[AnyEvent]] | None = None) -> AnyEvent:
    return parse_with_id(raw, known)[0]


def parse_with_id(
    raw: bytes, known: dict[tuple[str, int], type[AnyEvent]] | None = None
) -> tuple[AnyEvent, str]:
    """The event and its `event_id` as sent (consumers key their dedupe by it).

    The envelope's head is read from the decoded JSON directly, and the event validated once,
    by its class: a second model for the head doubled the cost of a consumed record."""
    classes = EVENT_CLASSES if known is None else known
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not an event envelope: {exc}") from exc
    head = _head(doc)
    cls = classes.get(head)
    if cls is None:
        raise UnknownEvent(*head)
    try:
        return cls.model_validate(doc), doc["event_id"]
    except ValidationError as exc:
        raise MalformedEvent(f"{head[0]} v{head[1]} failed validation: {exc}") from exc


def _head(doc: object) -> tuple[str, int]:
    if not isinstance(doc, dict):
        raise MalformedEvent("not an event envelope: not a JSON object")
    event_type, version, event_id = doc.get("event_type"), doc.get("event_version"), doc.get("event_id")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("not an event envelope: no event_type")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MalformedEvent("not an event envelope: event_version is not an integer")
    if not isinstance(event_id, str):
        raise MalformedEvent("not an event envelope: no event_id")
    return event_type, version


def serialize_event(event: AnyEvent) -> bytes:
    return event.model_dump_json().encode()
