"""Event contracts of the My MobiFone platform: envelope, events, topics, consumer groups."""

from .envelope import AnyEvent, Envelope, EventData, RawEnvelope, utcnow
from .msisdn import InvalidMsisdn, Msisdn, MsisdnInput, is_mobifone, normalize_msisdn
from .registry import EVENT_CLASSES, MalformedEvent, UnknownEvent, parse_event, parse_with_id, serialize_event
from .topics import CONSUMER_GROUPS, TOPICS, ConsumerGroup, Topic, all_topics, channel_title

__all__ = [
    "CONSUMER_GROUPS",
    "EVENT_CLASSES",
    "TOPICS",
    "AnyEvent",
    "ConsumerGroup",
    "Envelope",
    "EventData",
    "InvalidMsisdn",
    "MalformedEvent",
    "Msisdn",
    "MsisdnInput",
    "RawEnvelope",
    "Topic",
    "UnknownEvent",
    "all_topics",
    "channel_title",
    "is_mobifone",
    "normalize_msisdn",
    "parse_event",
    "parse_with_id",
    "serialize_event",
    "utcnow",
]
