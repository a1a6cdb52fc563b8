"""Cross-replica routing of watch sessions through Redis, so a browser's unary events and its intervention
stream reach one engine even when a load balancer spreads them over replicas.

Ownership: the replica that first touches a watch session claims it (`SET tutorstream:watch:owner:{id}
<replica> NX PX lease`) and holds its engine; it renews the lease while the session is loaded and releases it
when the session is unloaded. Other replicas:

- forward event batches to the owner (PUBLISH to the owner's inbox channel with a request id; the owner
  answers on the sender's inbox with the accepted count and rejections). If nobody listens on the owner's
  inbox, or no answer comes within `watch_forward_timeout_seconds`, the owner is presumed dead: the sender
  takes the lease over (compare-and-set) and processes the batch itself;
- subscribe their streams to `tutorstream:watch:out:{id}`, where the owner publishes every intervention.

Redis pub/sub is at-most-once: an intervention published while a subscriber's connection is down is lost for
that stream (events are never lost: they travel request/reply and are persisted by the owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from server.core.tasks import stop_task

log = logging.getLogger("tutorstream.progress")

OWNER_PREFIX = "tutorstream:watch:owner:"
INBOX_PREFIX = "tutorstream:watch:inbox:"
OUT_PREFIX = "tutorstream:watch:out:"

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return current
"""
_TAKE_OVER = """
local current = redis.call('GET', KEYS[1])
if (not current) or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return ARGV[1]
end
return current
"""
# A key that is gone (Redis restarted, or the lease ran out while this replica was busy) is claimed again:
# nobody else holds it, and dropping the session would throw away its live state.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not current then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = key
  end
end
return lost
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
InterventionHandler = Callable[[str, dict[str, Any]], None]


class OwnerGone(Exception):
    """The owning replica did not answer a forwarded request."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WatchRelay:
    def __init__(
        self,
        redis: Redis,
        subscriber: Redis,
        *,
        lease_seconds: float,
        forward_timeout: float,
        replica_id: str | None = None,
    ) -> None:
        self._redis = redis
        self._subscriber = subscriber
        self.replica_id = replica_id or uuid.uuid4().hex
        self._lease_ms = max(1000, int(lease_seconds * 1000))
        self._forward_timeout = forward_timeout
        self._inbox = INBOX_PREFIX + self.replica_id
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._watched: set[str] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.on_request: RequestHandler | None = None
        self.on_intervention: InterventionHandler | None = None
        self._claim = redis.register_script(_CLAIM)
        self._take_over = redis.register_script(_TAKE_OVER)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def start(self) -> None:
        """Subscribing happens in the reader, so a server starts (single-replica behaviour) while Redis is
        down and joins the relay as soon as Redis answers."""
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        self._reader = asyncio.create_task(self._read(), name="progress-relay-reader")

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        await stop_task(reader)
        for task in list(self._handlers):
            task.cancel()
        for future in self._waiting.values():
            future.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        await self._subscriber.aclose()

    # --- ownership ---------------------------------------------------------------------------------

    async def claim(self, watch_session_id: str) -> str:
        """The owner of the session: this replica if nobody held it (or it already did)."""
        return _text(await self._claim(keys=[OWNER_PREFIX + watch_session_id], args=[self.replica_id, self._lease_ms]))

    async def take_over(self, watch_session_id: str, dead_owner: str) -> str:
        return _text(
            await self._take_over(
                keys=[OWNER_PREFIX + watch_session_id], args=[self.replica_id, dead_owner, self._lease_ms]
            )
        )

    async def renew(self, watch_session_ids: list[str]) -> list[str]:
        """Extend our leases; returns the sessions whose lease is no longer ours."""
        if not watch_session_ids:
            return []
        keys = [OWNER_PREFIX + session_id for session_id in watch_session_ids]
        lost = await self._renew(keys=keys, args=[self.replica_id, self._lease_ms])
        return [_text(key)[len(OWNER_PREFIX) :] for key in lost]

    async def release(self, watch_session_id: str) -> None:
        await self._release(keys=[OWNER_PREFIX + watch_session_id], args=[self.replica_id])

    # --- forwarding --------------------------------------------------------------------------------

    async def forward(self, owner: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send `payload` to the owner's handler and return its answer; raises OwnerGone."""
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            message = json.dumps({"op": "request", "id": request_id, "reply_to": self._inbox, "body": payload})
            receivers = await self._redis.publish(INBOX_PREFIX + owner, message)
            if receivers == 0:
                raise OwnerGone(owner)
            try:
                async with asyncio.timeout(self._forward_timeout):
                    return await future
            except TimeoutError:
                raise OwnerGone(owner) from None
        finally:
            self._waiting.pop(request_id, None)

    # --- interventions -----------------------------------------------------------------------------

    async def publish_intervention(self, watch_session_id: str, body: dict[str, Any]) -> int:
        """Send an intervention to the streams other replicas hold; returns how many replicas listen."""
        message = json.dumps({"origin": self.replica_id, "body": body})
        return int(await self._redis.publish(OUT_PREFIX + watch_session_id, message))

    async def watch(self, watch_session_id: str) -> None:
        if watch_session_id not in self._watched and self._pubsub is not None:
            self._watched.add(watch_session_id)
            await self._pubsub.subscribe(OUT_PREFIX + watch_session_id)

    async def unwatch(self, watch_session_id: str) -> None:
        if watch_session_id in self._watched and self._pubsub is not None:
            self._watched.discard(watch_session_id)
            await self._pubsub.unsubscribe(OUT_PREFIX + watch_session_id)

    # --- the reader --------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._pubsub is not None
        subscribed = False
        while True:
            try:
                if not subscribed:
                    await self._pubsub.subscribe(self._inbox)
                    subscribed = True
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (RedisError, OSError) as error:
                log.warning("watch relay: Redis read failed (%s); retrying", type(error).__name__)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                self._dispatch(_text(message["channel"]), json.loads(message["data"]))
            except (ValueError, KeyError, TypeError):
                log.warning("watch relay: ignoring a malformed message")

    def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        if channel.startswith(OUT_PREFIX):
            if message.get("origin") != self.replica_id and self.on_intervention is not None:
                self.on_intervention(channel[len(OUT_PREFIX) :], message["body"])
            return
        if message.get("op") == "reply":
            future = self._waiting.get(message["id"])
            if future is not None and not future.done():
                future.set_result(message["body"])
        elif message.get("op") == "request" and self.on_request is not None:
            task = asyncio.create_task(self._answer(message, self.on_request))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _answer(self, message: dict[str, Any], handler: RequestHandler) -> None:
        try:
            body = await handler(message["body"])
        except Exception as error:
            log.exception("watch relay: a forwarded request failed")
            body = {"error": type(error).__name__}
        reply = json.dumps({"op": "reply", "id": message["id"], "body": body})
        with contextlib.suppress(RedisError, OSError):
            await self._redis.publish(message["reply_to"], reply)
