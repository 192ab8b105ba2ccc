"""Toxiproxy (installed by `deploy/local/install.sh toxiproxy`): a TCP proxy per link a service
has (Kafka, the store, Redis) and the faults the drill puts on a link, through its HTTP API.

A link's faults:
- cut: a black hole (the `timeout` toxic with no timeout, both ways): bytes go nowhere and
  nothing answers, as when a network partition swallows packets; connections hang until the
  clients' own deadlines. When it ends, the proxy drops the connections that were in the hole
  (their bytes are gone; Toxiproxy cannot hold them back as TCP would), as a client whose
  request timed out would.
- latency: every chunk held `latency_ms` (± `jitter_ms`) each way;
- drop: every `every` seconds all the link's connections are closed (a flapping link, a
  firewall or load balancer dropping idle flows); new connections succeed meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .platform import Platform

API_PORT = 8474


@dataclass(frozen=True)
class Link:
    """What a service reaches through the proxy: the setting that names it, and how."""

    name: str  # kafka | store | redis
    listen: int  # the proxy's port
    upstream: int  # the real part's port

    def setting(self) -> tuple[str, str]:
        """The service's environment variable pointing it at the proxy."""
        address = f"127.0.0.1:{self.listen}"
        if self.name == "kafka":
            return "KAFKA_BOOTSTRAP", address
        if self.name == "store":
            return "MONGODB_URL", f"mongodb://{address}/"
        return "REDIS_URL", f"redis://{address}/0"


def links(platform: Platform) -> list[Link]:
    """Kafka's link goes to the broker's proxied listener, which advertises the proxy's port
    (servicekit.kafka.broker_config): a client that bootstraps through the proxy then reaches
    the broker at the address the broker gives it, the proxy again."""
    return [
        Link("kafka", int(platform.env["KAFKA_PROXY_PORT"]), int(platform.env["KAFKA_PROXIED_PORT"])),
        Link("store", platform.port("mongo") + 100, platform.port("mongo")),
        Link("redis", platform.port("redis") + 10000, platform.port("redis")),
    ]


class Toxiproxy:
    """The proxy server (started here unless one answers on its port) and its API."""

    def __init__(self, platform: Platform, port: int = API_PORT) -> None:
        self.platform = platform
        self.api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0, trust_env=False)
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, wanted: list[Link]) -> None:
        if not await self._answers():
            binary = Path(self.platform.env["BIN"]) / "toxiproxy-server"
            if not binary.exists():
                raise RuntimeError(f"{binary} is missing: deploy/local/install.sh toxiproxy")
            with (Path(self.platform.env["LOGS"]) / "toxiproxy.log").open("ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    str(binary),
                    *("-host", "127.0.0.1", "-port", str(self.port)),
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    env=os.environ | {"LOG_LEVEL": "warn"},  # else a line per chunk forwarded
                )
            for _ in range(100):
                if await self._answers():
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("toxiproxy-server did not answer (log: .cache/logs/toxiproxy.log)")
        for link in wanted:
            await self.api.delete(f"/proxies/{link.name}")
            r = await self.api.post(
                "/proxies",
                json={
                    "name": link.name,
                    "listen": f"127.0.0.1:{link.listen}",
                    "upstream": f"127.0.0.1:{link.upstream}",
                    "enabled": True,
                },
            )
            r.raise_for_status()

    async def stop(self) -> None:
        await self.api.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()

    async def _answers(self) -> bool:
        try:
            return (await self.api.get("/version")).status_code == 200
        except httpx.HTTPError:
            return False

    async def toxic(self, link: str, kind: str, **attributes: Any) -> None:
        """The toxic on both directions of the link."""
        for stream in ("upstream", "downstream"):
            r = await self.api.post(
                f"/proxies/{link}/toxics",
                json={"name": f"{kind}-{stream}", "type": kind, "stream": stream, "attributes": attributes},
            )
            r.raise_for_status()

    async def heal(self, link: str) -> None:
        """Every toxic off the link (what is not there is fine)."""
        r = await self.api.get(f"/proxies/{link}/toxics")
        r.raise_for_status()
        for toxic in r.json():
            await self.api.delete(f"/proxies/{link}/toxics/{toxic['name']}")

    async def drop_connections(self, link: str) -> None:
        """Closes every connection of the link; the proxy listens again at once."""
        for enabled in (False, True):
            r = await self.api.post(f"/proxies/{link}", json={"enabled": enabled})
            r.raise_for_status()

    async def cut(self, link: str) -> None:
        await self.toxic(link, "timeout", timeout=0)

    async def end_cut(self, link: str) -> None:
        await self.heal(link)
        await self.drop_connections(link)

    async def latency(self, link: str, latency_ms: int, jitter_ms: int) -> None:
        await self.toxic(link, "latency", latency=latency_ms, jitter=jitter_ms)

    async def flap(self, link: str, seconds: float, every: float) -> None:
        """Drops the link's connections every `every` seconds for `seconds`."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await self.drop_connections(link)
            await asyncio.sleep(min(every, max(0.0, end - loop.time())))
