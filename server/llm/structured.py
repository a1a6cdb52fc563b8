"""Structured model calls for the agents: PII redaction, a token-budget reservation around each call, usage
accounting across attempts, and the decision to go offline.

`StructuredCaller.ask()` returns
- a `JsonAnswer` with `data`: the parsed JSON, which the caller validates in code;
- a `JsonAnswer` with `data` None and a `problem`: the model answered, but not in the requested shape
  (broken or truncated JSON, a refusal); the caller may try once more;
- None when no model can answer now (none configured, breaker open, an outage that outlasted the provider's
  retries): the caller takes its offline path.

As in chat, rejected credentials or requests (FAILED_PRECONDITION) and an exhausted deadline
(DEADLINE_EXCEEDED) are not hidden behind the offline path, and a spent token budget raises QuotaExceeded
before any call. Every call that reached the model is charged: a malformed answer at an estimate (the
prompt's tokens plus the tokens of the text that came back), since the upstream did the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from server.config import Settings
from server.core import metrics
from server.core.auth import Principal
from server.core.errors import Unavailable
from server.core.values import Usage
from server.limits.budget import Reservation, TokenBudget
from server.llm.cost import cost_usd
from server.llm.moderation import Moderator
from server.llm.pii import redact_messages
from server.llm.provider import ChatMessage, ChatParams, MalformedOutput, UpstreamTimeout
from server.llm.router import LLMRouter, budgeted_model, pseudonymous_user

logger = logging.getLogger(__name__)


@dataclass
class Spend:
    """Tokens and cost of every model call made for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += cost
        self.calls += 1

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens, self.cost_usd)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    data: Any
    problem: str
    raw_text: str
    model: str


@dataclass(frozen=True, slots=True)
class CheckedAnswer(Generic[T]):
    value: T
    model: str
    attempt: int


class StructuredCaller:
    def __init__(
        self, settings: Settings, llm: LLMRouter, budget: TokenBudget, moderator: Moderator | None = None
    ) -> None:
        """Without a `moderator`, `ask_checked` does not moderate output (callers that only `ask`)."""
        self._settings = settings
        self._llm = llm
        self._budget = budget
        self._moderator = moderator

    @property
    def model(self) -> str:
        """The model asked for structured output (the configured chat model)."""
        return self._settings.chat_model

    def online(self) -> bool:
        """Would a call go to the model now (a key is configured and the breaker is not open)?"""
        return self._llm.upstream_likely()

    async def ask(
        self,
        principal: Principal,
        *,
        operation: str,
        messages: Sequence[ChatMessage],
        schema_name: str,
        schema: dict[str, Any],
        temperature: float,
        max_tokens: int,
        deadline: float | None,
        spend: Spend,
    ) -> JsonAnswer | None:
        if not self.online():
            return None
        redacted = await asyncio.to_thread(redact_messages, messages)
        if redacted.total:
            logger.info("pii redacted before the model call", extra={"counts": redacted.counts})
        counter = self._llm.counter()
        prompt_estimate = counter.count_messages(message.content for message in redacted.messages)
        reservation = await self._budget.reserve(principal, prompt_estimate + max_tokens, operation=operation)
        params = ChatParams(
            model=budgeted_model(self._settings, reservation),
            temperature=temperature,
            max_tokens=max_tokens,
            deadline=deadline,
            user=pseudonymous_user(principal.user_id),
        )
        try:
            result = await self._llm.complete_json(redacted.messages, params, schema_name, schema)
        except MalformedOutput as error:
            await self._charge(reservation, spend, params.model, prompt_estimate, counter.count(error.raw_text))
            return JsonAnswer(None, error.message, error.raw_text, params.model)
        except UpstreamTimeout as error:
            await reservation.release()
            remaining = params.time_remaining()
            if remaining is not None and remaining <= 0:
                raise
            logger.warning("structured call timed out, going offline", extra={"reason": error.reason})
            return None
        except Unavailable as error:
            # No model configured, breaker open, or an outage after the provider's own retries.
            await reservation.release()
            logger.warning("structured call unavailable, going offline", extra={"reason": error.reason})
            return None
        except BaseException:
            await reservation.release()
            raise
        await self._charge(reservation, spend, result.model, result.prompt_tokens, result.completion_tokens)
        return JsonAnswer(result.data, "", result.raw_text, result.model)

    async def _charge(
        self, reservation: Reservation, spend: Spend, model: str, prompt_tokens: int, completion_tokens: int
    ) -> None:
        cost = cost_usd(self._settings, model, prompt_tokens, completion_tokens)
        spend.add(prompt_tokens, completion_tokens, cost)
        try:
            await reservation.commit(
                model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost
            )
        except Exception as exc:
            # An unsettled reservation is charged at its estimate when it expires: never lost.
            logger.warning("token budget settlement failed: %s", type(exc).__name__)

    async def ask_checked(
        self,
        principal: Principal,
        check: Callable[[Any], T | str],
        *,
        operation: str,
        messages: Sequence[ChatMessage],
        schema_name: str,
        schema: dict[str, Any],
        temperature: float,
        max_tokens: int,
        deadline: float | None,
        spend: Spend,
        attempts: int = 2,
    ) -> CheckedAnswer[T] | None:
        """Ask, validate the JSON in code with `check` (a value, or a string saying what is wrong), and on a
        rejection ask again with the model's answer and the reason. A valid answer is moderated before anyone
        reads it. None: no model now, every attempt was rejected, or moderation flagged what the model wrote —
        the caller takes its offline path."""
        conversation = list(messages)
        for attempt in range(1, attempts + 1):
            answer = await self.ask(
                principal,
                operation=operation,
                messages=conversation,
                schema_name=schema_name,
                schema=schema,
                temperature=temperature,
                max_tokens=max_tokens,
                deadline=deadline,
                spend=spend,
            )
            if answer is None:
                return None
            checked = check(answer.data) if answer.data is not None else answer.problem
            if not isinstance(checked, str):
                if await self._flagged(operation, answer.data):
                    return None
                return CheckedAnswer(checked, answer.model, attempt)
            conversation += [
                *([ChatMessage("assistant", answer.raw_text[:2000])] if answer.raw_text.strip() else []),
                ChatMessage("user", f"That answer was rejected: {checked}. Write it again, following every rule."),
            ]
        return None

    async def _flagged(self, operation: str, data: Any) -> bool:
        """Output moderation: does what the model wrote (every string in its JSON) get flagged? Counted as
        `{operation}_output`; the text itself is not kept (it never reached a student)."""
        if self._moderator is None:
            return False
        written = "\n".join(_strings(data))
        verdict = await self._moderator.check(written, redacted=written)
        if verdict.flagged:
            metrics.count_moderation_flag(f"{operation}_output", verdict.category)
            logger.warning(
                "moderation flagged the model's output; the offline path answers",
                extra={"operation": operation, "category": verdict.category, "detector": verdict.detector},
            )
        return verdict.flagged


def _strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [text for value in data.values() for text in _strings(value)]
    if isinstance(data, list):
        return [text for value in data for text in _strings(value)]
    return []
