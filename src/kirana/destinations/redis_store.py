"""Redis: a hash per entity and a set per collection, for fast look-ups.

``upsert``/``insert``/``event`` write ``HSET <prefix><collection>:<key>`` with the
record's fields and ``SADD <prefix><collection> <key>``; ``delete`` removes
both. A promotions engine or CMS asks "is this user in audience X?"
(``SISMEMBER``) or "what do we know about them?" (``HGETALL``) in one round
trip. A batch is one MULTI/EXEC transaction, and every command is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import redis

from kirana.destinations.config import RedisSettings
from kirana.destinations.errors import PermanentError, RetryableError
from kirana.destinations.records import OutboundRecord

DEFAULT_COLLECTION = "users"


def _value(value: Any) -> str | int | float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return msgspec.json.encode(value).decode()


class RedisDestination:
    def __init__(self, settings: RedisSettings) -> None:
        self._prefix = settings.key_prefix
        self._client = redis.Redis.from_url(settings.url, socket_timeout=10)

    def keys_for(self, record: OutboundRecord) -> tuple[str, str]:
        collection = record.collection or DEFAULT_COLLECTION
        return f"{self._prefix}{collection}:{record.key}", f"{self._prefix}{collection}"

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for record in records:
            hash_key, set_key = self.keys_for(record)
            if record.action == "delete":
                pipe.delete(hash_key)
                pipe.srem(set_key, record.key)
                continue
            if record.action == "upsert":
                pipe.delete(hash_key)  # an upsert replaces the row: dropped fields go too
            fields = {k: _value(v) for k, v in record.data.items() if v is not None}
            if fields:
                pipe.hset(hash_key, mapping=fields)
            pipe.sadd(set_key, record.key)
        try:
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise RetryableError(f"Redis unavailable: {exc}", outage=True) from exc
        except redis.RedisError as exc:
            raise PermanentError(f"Redis refused the batch: {exc}") from exc

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self._client.close()
