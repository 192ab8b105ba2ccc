"""One-time codes in Redis: issued to whoever asked, checked once.

A code is bound to its requester (the client, or the known device, that asked for it:
login_limits.py): it is stored under (number, requester) and only that requester's checks
compare against it. A stranger elsewhere can neither guess it nor burn it with wrong guesses;
to guess at all he has to ask for codes himself, which sends them to the owner's phone and is
limited per number. Codes are never stored in clear (an HMAC of number and code, domain/otp.py).
"""

from __future__ import annotations

from redis.asyncio import Redis

from .domain.otp import code_digest, new_code
from .otp_queue import OtpQueue

# Single use: compare, then delete on success or count the miss; a code with too many misses is
# burnt (the owner asks for a new one; nobody is locked out by it). KEYS[1]: the code; ARGV: the
# digest presented, the misses allowed. Returns {status, attempts left}: 0 no code, 1 right,
# 2 wrong, -2 wrong and now burnt. Two checks of one code see one winner.
_CHECK_CODE = """
local digest = redis.call('HGET', KEYS[1], 'digest')
if not digest then return {0, 0} end
if digest == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {1, 0}
end
local wrong = redis.call('HINCRBY', KEYS[1], 'wrong', 1)
if wrong >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {-2, 0}
end
return {2, tonumber(ARGV[2]) - wrong}
"""

RIGHT, NO_CODE, WRONG, BURNT = 1, 0, 2, -2


def code_key(msisdn: str, requester: str) -> str:
    return f"otp:code:{msisdn}:{requester}"


class OtpCodes:
    def __init__(self, redis: Redis, pepper: bytes, queue: OtpQueue) -> None:
        self.redis = redis
        self.pepper = pepper
        self.queue = queue
        self._check = redis.register_script(_CHECK_CODE)

    async def issue(
        self, msisdn: str, requester: str, *, digits: int, ttl_seconds: int, known_device: bool
    ) -> None:
        """A new code for the requester (replacing its previous one), queued for the sender."""
        code, key = new_code(digits), code_key(msisdn, requester)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": code_digest(self.pepper, msisdn, code), "wrong": 0})
            pipe.expire(key, ttl_seconds)
            pipe.rpush(self.queue.key, self.queue.seal(msisdn, code, known_device=known_device))
            await pipe.execute()

    async def check(self, msisdn: str, requester: str, code: str, *, max_wrong: int) -> tuple[int, int]:
        """(RIGHT | NO_CODE | WRONG | BURNT, attempts left); a right code is used up."""
        presented = code_digest(self.pepper, msisdn, code)
        status, left = await self._check(keys=[code_key(msisdn, requester)], args=[presented, max_wrong])
        return int(status), int(left)
