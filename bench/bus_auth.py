"""What authentication on the bus costs: the kit's producer and consumer rates against the
platform's broker (SASL/SCRAM-SHA-512 over TLS, ACLs) and against a throwaway broker with no
security at all (the same Kafka jars and JVM settings, PLAINTEXT, started by this benchmark on
free ports and removed afterwards), in one run.

    python bench/bus_auth.py [--events 20000] [--rounds 3]

Producer: `EventPublisher.publish` of TopupRecorded in batches of 500 (send all, then await
every ack), events/s. Consumer: the kit's `EventConsumer` with a no-op handler (no inbox, no
store) over the same number of events already on the topic, timed from the first batch to
the last, events/s. Each round measures both brokers back to back (alternating which goes
first); the figures are medians, the ratio the median of the rounds' ratios. The load
average is printed with every figure (figures taken on a loaded machine mean little).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mobi_contracts import AnyEvent, ConsumerGroup, Topic
from mobi_contracts.events.payment import TopupRecorded, TopupRecordedData
from servicekit.app import tune_gc
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.admin import ensure_topics
from servicekit.kafka.consumer import EventConsumer
from servicekit.kafka.publisher import EventPublisher, producer_broker

ROOT = Path(__file__).resolve().parents[1]
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.1")
BATCH = 500


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def plaintext_broker() -> Iterator[str]:
    """A single-node KRaft broker with no security, like the platform's in every other way."""
    libs = ROOT / ".cache" / f"kafka-{KAFKA_VERSION}" / "libs"
    port, controller = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-plain-kafka-"))
    conf = work / "server.properties"
    conf.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={work / 'logs'}",
                "num.partitions=3",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=10",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
            ]
        )
    )
    classpath = f"{libs}/*"
    cluster = subprocess.run(
        ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(conf)],
        capture_output=True,
        check=True,
    )
    log = (work / "kafka.log").open("w")
    process = subprocess.Popen(
        [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={ROOT / 'deploy/local/conf/kafka-log4j2.yaml'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(conf),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the throwaway broker did not start: {work / 'kafka.log'}") from None
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def events(count: int) -> list[TopupRecorded]:
    now = datetime.now(UTC)
    return [
        TopupRecorded.new(
            subject=f"8490{i % 500:07d}",
            data=TopupRecordedData(
                topup_id=f"bench-{uuid.uuid4().hex}",
                amount_vnd=10_000,
                method="scratch_card",
                payer_msisdn=f"8490{i % 500:07d}",
                recorded_at=now,
            ),
            producer="bench",
            correlation_id=f"bench-{i}",
        )
        for i in range(count)
    ]


class NoInbox:
    async def seen(self, event_ids: list[str]) -> set[str]:
        return set()

    async def remember(self, event_ids: list[str]) -> None:
        return None


async def produce(access: KafkaAccess, topic: Topic, batch: list[TopupRecorded]) -> float:
    publisher = EventPublisher(access, "bench")
    await publisher.start()
    await publisher.publish(topic.name, batch[:BATCH])  # connected and warm before the clock
    started = time.perf_counter()
    for start in range(BATCH, len(batch), BATCH):
        await publisher.publish(topic.name, batch[start : start + BATCH])
    elapsed = time.perf_counter() - started
    await publisher.stop()
    return (len(batch) - BATCH) / elapsed


async def consume(access: KafkaAccess, topic: Topic, expected: int) -> float:
    group = ConsumerGroup(
        name=f"bench-auth-{uuid.uuid4().hex[:8]}", topics=(topic,), handles=(TopupRecorded,)
    )
    await ensure_topics(access, [group.dead_letter])
    publisher = EventPublisher(access, "bench")
    await publisher.start()
    done, seen, started = asyncio.Event(), [0], [0.0]

    async def no_op(batch: list[AnyEvent]) -> None:
        started[0] = started[0] or time.perf_counter()
        seen[0] += len(batch)
        if seen[0] >= expected:
            done.set()

    consumer = EventConsumer(group, no_op, service="bench", inbox=NoInbox(), publisher=publisher)  # type: ignore[arg-type]
    broker = producer_broker(access, "bench-consumer", logger=None)
    consumer.subscribe(broker, max_records=BATCH, batch_timeout_ms=50, fetch_max_wait_ms=50)
    await broker.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - started[0]
    await broker.stop()
    await publisher.stop()
    return expected / elapsed


async def measure(access: KafkaAccess, count: int) -> tuple[float, float]:
    topic = Topic(
        name=f"bench.auth.{uuid.uuid4().hex[:8]}", description="", events=(TopupRecorded,), producer="bench"
    )
    await ensure_topics(access, [topic])
    batch = events(count)
    produced = await produce(access, topic, batch)
    consumed = await consume(access, topic, len(batch))
    return produced, consumed


async def run(rounds: int, count: int, plain_bootstrap: str) -> None:
    tune_gc()
    secure = KafkaAccess.local("bench")
    plain = KafkaAccess(plain_bootstrap, "bench", protocol="PLAINTEXT")
    brokers = {"plain": plain, "secure": secure}
    results: dict[str, dict[str, list[float]]] = {k: {"produce": [], "consume": []} for k in brokers}
    for round_no in range(rounds):
        for kind in ["plain", "secure"] if round_no % 2 == 0 else ["secure", "plain"]:
            produced, consumed = await measure(brokers[kind], count)
            results[kind]["produce"].append(produced)
            results[kind]["consume"].append(consumed)
            print(
                f"round {round_no + 1}: {kind:6} produce {produced:8,.0f}/s  consume {consumed:8,.0f}/s  ({load()})",
                flush=True,
            )
    print(f"\n{count} TopupRecorded, batches of {BATCH}, {rounds} rounds, medians ({load()}):")
    for what in ("produce", "consume"):
        plain_rate = statistics.median(results["plain"][what])
        secure_rate = statistics.median(results["secure"][what])
        ratio = statistics.median(
            s / p for s, p in zip(results["secure"][what], results["plain"][what], strict=True)
        )
        print(
            f"  {what:8} PLAINTEXT {plain_rate:8,.0f} events/s   SASL_SSL+ACLs {secure_rate:8,.0f} events/s"
            f"   secure / plain {ratio:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with plaintext_broker() as plain_bootstrap:
        asyncio.run(run(args.rounds, args.events, plain_bootstrap))


if __name__ == "__main__":
    main()
