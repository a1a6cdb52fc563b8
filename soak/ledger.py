"""What the clients were told: every RPC's final status, and every write the server acknowledged.

An acknowledgement is what the API promises a client can rely on:
- a chat turn whose final chunk arrived: its question, its answer (exactly the text streamed) and its AI
  interaction are stored under the ids the final chunk names;
- a chat turn the client cancelled after text arrived: the question was committed before the answer started,
  and the answer is stored (marked incomplete, unless the server had already finished it) beginning with the
  text the client saw;
- progress events: those a PublishVideoEvents reply accepted, and those sent on a WatchVideo stream that ended
  OK without a rejection for them;
- interactions: the ids RecordInteraction and the agents returned; quiz answers: the attempts
  SubmitQuizAnswer answered;
- transcripts: ingest jobs reported SUCCEEDED (the transcript and all of its chunks are searchable).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

T = TypeVar("T")
CLIENT_CANCELLED = "CANCELLED by client"


@dataclass(frozen=True, slots=True)
class CompletedTurn:
    session_id: str
    question: str
    answer: str
    user_message_id: str
    assistant_message_id: str
    interaction_id: str
    cut_off: bool


@dataclass(frozen=True, slots=True)
class CancelledTurn:
    session_id: str
    question: str
    received: str


@dataclass
class Ledger:
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    completed_turns: list[CompletedTurn] = field(default_factory=list)
    cancelled_turns: list[CancelledTurn] = field(default_factory=list)
    events: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    interactions: set[str] = field(default_factory=set)
    quiz_attempts: set[str] = field(default_factory=set)
    transcripts: set[str] = field(default_factory=set)
    notes: Counter[str] = field(default_factory=Counter)
    # When Redis came back (monotonic), and the calls that ended OK after it.
    redis_back_at: float | None = None
    ok_after_redis_restart: int = 0

    def status(self, rpc: str, code: str) -> None:
        self.statuses[(rpc, code)] += 1
        if code == "OK" and self.redis_back_at is not None and time.monotonic() > self.redis_back_at:
            self.ok_after_redis_restart += 1

    def error(self, rpc: str, error: grpc.aio.AioRpcError) -> None:
        self.status(rpc, error.code().name)

    async def unary(self, rpc: str, call: Awaitable[T]) -> T | None:
        """Await a unary call and record its status; None when it failed."""
        try:
            reply = await call
        except grpc.aio.AioRpcError as error:
            self.error(rpc, error)
            return None
        self.status(rpc, "OK")
        return reply

    def acknowledged_events(self) -> int:
        return sum(len(ids) for ids in self.events.values())

    def by_code(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_, code), count in self.statuses.items():
            totals[code] += count
        return totals
