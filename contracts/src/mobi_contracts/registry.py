"""Find the class for an event by (type, version) and parse raw bytes into it."""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from .envelope import AnyEvent, RawEnvelope
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
    classes = EVENT_CLASSES if known is None else known
    try:
        doc = orjson.loads(raw)
        head = RawEnvelope.model_validate(doc)
    except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
        raise MalformedEvent(f"not an event envelope: {exc}") from exc
    cls = classes.get((head.event_type, head.event_version))
    if cls is None:
        raise UnknownEvent(head.event_type, head.event_version)
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        raise MalformedEvent(f"{head.event_type} v{head.event_version} failed validation: {exc}") from exc


def serialize_event(event: AnyEvent) -> bytes:
    return event.model_dump_json().encode()
