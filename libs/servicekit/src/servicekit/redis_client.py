"""Redis: short-lived state (OTP codes, limits, sessions) and the consumers' inbox."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    # Short timeouts: a limiter that waits on a dead Redis is worse than one that refuses.
    return Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=15, decode_responses=False
    )
