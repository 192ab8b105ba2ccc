"""Redis: short-lived state (OTP codes, limits, sessions) and the consumers' inbox."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def create_redis(url: str) -> Redis:
    # Short timeouts: a limiter that waits on a dead Redis is worse than one that refuses.
    # After Redis restarts, every pooled connection is dead; a command meeting one reconnects
    # and is tried again (twice at most, within about 0.2 s) instead of failing a login.
    return Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
        retry_on_error=[RedisConnectionError],
    )
