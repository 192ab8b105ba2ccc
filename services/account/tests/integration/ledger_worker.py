"""One instance of the account ledger consumer group, as a process of its own (for tests that kill it).

    python ledger_worker.py SOURCE_TOPIC SINK_TOPIC GROUP DATABASE [PAUSE_FILE]

Runs the kit's consumer with the real LedgerService on the given topics and database. With
PAUSE_FILE, every batch first touches that file and waits 0.3 s after its journal insert:
the test kills the process there, before the batch's snapshots, cache and events are written.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path

from account_service.ledger import LedgerService
from account_service.store import INDEXES
from mobi_contracts import ConsumerGroup, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.acls import TESTS
from servicekit.kafka.consumer import EventConsumer
from servicekit.kafka.inbox import Inbox
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.redis_client import create_redis
from servicekit.testing import kafka_access, kafka_broker

MONGO = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class PausingLedger(LedgerService):
    def __init__(self, *args: object, pause_file: Path | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pause_file = pause_file

    async def _write_snapshots(self, now: datetime) -> None:
        if self.pause_file is not None:
            self.pause_file.touch()
            await asyncio.sleep(0.3)
        await super()._write_snapshots(now)


async def main(source: str, sink: str, group_name: str, database: str, pause: str | None) -> None:
    store = Store(MONGO, database, app_name="ledger-worker")
    await store.connect()
    await store.ensure_indexes(INDEXES)
    source_topic = Topic(name=source, description="", events=(TopupRecorded,), producer="tests")
    sink_topic = Topic(
        name=sink, description="", events=(BalanceChanged, BalanceChangeRejected), producer="tests"
    )
    group = ConsumerGroup(name=group_name, topics=(source_topic,), handles=(TopupRecorded,))
    broker = kafka_broker(TESTS)
    publisher = EventPublisher(kafka_access(TESTS), "ledger-worker")
    await publisher.start()
    redis = create_redis(REDIS)
    ledger = PausingLedger(store, publisher, sink_topic, pause_file=Path(pause) if pause else None)
    consumer = EventConsumer(
        group, ledger.apply, service="ledger-worker", inbox=Inbox(redis, group_name, 600), publisher=publisher
    )
    consumer.subscribe(broker, max_records=50, batch_timeout_ms=20, fetch_max_wait_ms=50)
    await broker.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(*args[:4], args[4] if len(args) > 4 else None))
