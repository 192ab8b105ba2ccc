"""Reads the broker: consumer groups, their committed offsets, members and the partitions'
end offsets, with aiokafka's admin client and a group-less consumer (as `ops`)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from servicekit.kafka.access import KafkaAccess

from .domain import Partition, Reading

# DescribeGroups response, per group (every version): error_code, group, state,
# protocol_type, protocol, members, ...
_GROUP_ID, _MEMBERS = 1, 5


class BrokerReader:
    def __init__(
        self,
        access: KafkaAccess,
        *,
        exclude_groups: str = "",
        exclude_topics: str = "",
        group_concurrency: int = 8,
        request_timeout_ms: int = 10_000,
    ) -> None:
        self._access = access
        self._exclude_groups = re.compile(exclude_groups) if exclude_groups else None
        self._exclude_topics = re.compile(exclude_topics) if exclude_topics else None
        self._gate = asyncio.Semaphore(group_concurrency)
        self._timeout_ms = request_timeout_ms
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        options = self._access.aiokafka()
        self._admin = AIOKafkaAdminClient(
            client_id="lag-exporter", request_timeout_ms=self._timeout_ms, **options
        )
        # No group: it only asks for end offsets (ListOffsets), it never joins or commits.
        self._consumer = AIOKafkaConsumer(
            client_id="lag-exporter",
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=self._timeout_ms,
            **options,
        )
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()
        self._admin = self._consumer = None

    def _keep_group(self, group: str) -> bool:
        return not (self._exclude_groups and self._exclude_groups.search(group))

    def _keep_topic(self, topic: str) -> bool:
        return not (self._exclude_topics and self._exclude_topics.search(topic))

    async def read(self) -> Reading:
        admin, consumer = self._admin, self._consumer
        assert admin is not None and consumer is not None, "start() first"
        listed = await admin.list_consumer_groups()
        groups = sorted({str(entry[0]) for entry in listed if self._keep_group(str(entry[0]))})
        committed = dict(
            zip(groups, await asyncio.gather(*(self._committed(admin, g) for g in groups)), strict=True)
        )
        members = await self._members(admin, groups)
        topics = sorted(t for t in await admin.list_topics() if self._keep_topic(t))
        partitions = await self._partitions(admin, topics)
        end = await consumer.end_offsets(partitions) if partitions else {}
        return Reading(
            at=time.time(),
            committed=committed,
            end={(tp.topic, tp.partition): int(offset) for tp, offset in end.items()},
            members=members,
        )

    async def _committed(self, admin: AIOKafkaAdminClient, group: str) -> dict[Partition, int]:
        async with self._gate:
            offsets = await admin.list_consumer_group_offsets(group)
        # -1: no offset committed for that partition.
        return {
            (tp.topic, tp.partition): int(meta.offset)
            for tp, meta in offsets.items()
            if meta.offset >= 0 and self._keep_topic(tp.topic)
        }

    async def _members(self, admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, int]:
        """One group per request, one after another: aiokafka 0.14 fails to decode a
        DescribeGroups answer about several groups from Kafka 4.1 ("Buffer underrun decoding
        string", the connection dropped), while each group alone decodes fine."""
        members = {}
        for group in groups:
            responses: list[Any] = await admin.describe_consumer_groups([group])
            for response in responses:
                for described in response.groups:
                    members[str(described[_GROUP_ID])] = len(described[_MEMBERS])
        return members

    @staticmethod
    async def _partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
        if not topics:
            return []
        described = await admin.describe_topics(topics)
        return [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t.get("error_code")
            for p in t["partitions"]
        ]
