"""One StreamChat turn: store the question, build the context, stream the answer, store the answer.

Longer than 400 lines because a turn's endings (answered, cut mid-answer, cancelled, past its deadline, broken
upstream, fitted to a spent budget) share its state and are read together; the stages it calls live in
`context`, `recording`, `release` and `questions`.

    question stored (one statement, committed; meanwhile redacted, embedded, parsed, sent to moderation)
      ─► excerpts + preferences + budget reservation (concurrently, while the verdict is awaited)
      ─► prompt ─► PII redaction ─► response cache? ─► routed model / offline engine
      ─► deltas relayed as they arrive ─► answer + interaction stored ─► final chunk

How a turn ends:
- normally: the answer is stored, the final chunk carries citations, usage, model and the stored ids;
- the model breaks off after some text (connection cut, 5xx mid-stream): the partial answer is stored
  `incomplete` and the client gets a final chunk with finish reason ERROR (status OK), so it keeps the text
  it already has and knows it is cut short;
- the client cancels or the deadline passes, mid-stream or before the model was called: the upstream stream is
  closed first, the cancellation (or DEADLINE_EXCEEDED) propagates at once, and the answer so far (maybe
  empty) is stored `incomplete` with why it ended by a task the cancellation cannot interrupt (and shutdown
  waits for);
- the model fails before any text: outages fall back to the offline engine (see `server.llm.router`),
  anything else (rejected key, deadline) is the RPC's status; the question stays stored.

Budget: the reservation is an upper bound made before retrieval finishes (the prompt's size is capped:
history budget + excerpt budget + the largest answer any preference allows), so it runs alongside retrieval
instead of after it; commit replaces it with the real usage. When the student's remaining tokens cannot hold
that bound, nothing is refused yet: a cached answer is replayed at no cost; otherwise the turn is fitted to
what remains — the real prompt, fewer excerpts if need be, and a shorter answer (`max_tokens`) — and is
refused only when not even a `MIN_ANSWER_TOKENS` answer with one excerpt's worth of lecture fits. Usage is
the model's own counts when it reports them. A cut-off answer is charged at an estimate (prompt tokens plus
the tokens of the text received): the upstream did the work. The offline engine, cache hits and failures
before any text release the reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from opentelemetry import trace

from server.agents.preferences import PreferencesService, PreferenceValues
from server.analytics.moderation import FlagPlace, record_flag
from server.chat import repository as repo
from server.chat.context import (
    SOURCE_TOKEN_BUDGET,
    Gathered,
    HistoryMessage,
    Prompt,
    analysed,
    build_prompt,
    gather_turn,
    prompt_ceiling,
)
from server.chat.domain import (
    CANCELLED,
    CONTENT_FILTER,
    DEADLINE,
    ERROR,
    LENGTH,
    STOP,
    USER,
    AnswerDelta,
    AnswerFinal,
    ChatEvent,
    LearningContext,
    ReferenceInfo,
    reference_from_json,
)
from server.chat.recording import AnswerRecorder, TurnState
from server.chat.release import SentenceRelease
from server.chat.validation import validate_context, validate_message
from server.config import Settings
from server.core import metrics, tracing
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import DeadlineExceeded, InvalidArgument, NotFound, QuotaExceeded
from server.experiments.assignment import NO_SPOILERS_ARM, Assignments, Lever
from server.limits.budget import TokenBudget
from server.llm.cache import CachedAnswer, cache_key
from server.llm.grounding import Source
from server.llm.moderation import (
    SELF_HARM,
    SUPPORTIVE_MODEL,
    SUPPORTIVE_REPLY,
    Moderator,
    Verdict,
    reads_as_self_harm,
)
from server.llm.offline import OfflineRequest
from server.llm.persona import MAX_ANSWER_TOKENS, Persona, persona_for
from server.llm.pii import redact, redact_messages
from server.llm.provider import ChatParams, Completion, ProviderError, StreamEvent, TextDelta, UpstreamError
from server.llm.router import LLMRouter, budgeted_model, pseudonymous_user
from server.llm.tokens import TokenCounter
from server.nlp.query import QuestionAnalysis, analyse_question
from server.transcripts.search import TranscriptSearch
from server.transcripts.sentences import SentenceStore

logger = logging.getLogger(__name__)

HISTORY_FETCH_LIMIT = 60
# A turn fitted to a nearly spent budget still leaves room for an answer of at least this many tokens.
MIN_ANSWER_TOKENS = 96
# The excerpt budgets a fitted turn tries after the full one, largest first (the last about one excerpt).
FITTED_SOURCE_BUDGETS = (1200, 600, 300)
A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")
# Of the session's last UNGROUNDED_WINDOW answers, this many ungrounded ones route the next turn offline.
UNGROUNDED_WINDOW = 3
UNGROUNDED_LIMIT = 2
_FINISH_REASONS = {"stop": STOP, "length": LENGTH, "content_filter": CONTENT_FILTER}


@dataclass(frozen=True)
class _Stored:
    user_message_id: str
    context: LearningContext
    references: list[ReferenceInfo]
    history: list[HistoryMessage]
    # How many of the session's last UNGROUNDED_WINDOW answers were not grounded.
    ungrounded: int


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a turn gathered before its prompt is built."""

    preferences: PreferenceValues
    spoiler_limit: float | None
    gathered: Gathered
    refused: QuotaExceeded | None
    counter: TokenCounter
    # The model's recent answers in the session were not grounded: the offline engine answers (`_model_strayed`).
    strayed: bool


class TurnRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        search: TranscriptSearch,
        sentences: SentenceStore,
        preferences: PreferencesService,
        llm: LLMRouter,
        budget: TokenBudget,
        moderator: Moderator,
    ) -> None:
        self._settings = settings
        self._db = database
        self._search = search
        self._sentences = sentences
        self._preferences = preferences
        self._llm = llm
        self._recorder = AnswerRecorder(settings, database, llm.counter())
        self._budget = budget
        self._moderator = moderator
        self._assignments = Assignments(database)
        # Final writes of cancelled turns run here, out of reach of the cancellation.
        self._background: set[asyncio.Task[Any]] = set()
        # The tasks running turns: on shutdown, the ones the grace period cut short still store what they had.
        self._turns: set[asyncio.Task[Any]] = set()

    async def aclose(self, within_seconds: float = 5.0) -> None:
        """On shutdown, after the grace period and before the database closes: cut the turns still running (the
        server may not have cancelled their calls yet), let them reach their final write, and those writes
        finish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        for turn in list(self._turns):
            turn.cancel()
        # The writes are looked at after the turns end: a cancelled turn starts its write as it ends.
        running: tuple[set[asyncio.Task[Any]], ...] = (self._turns, self._background)
        for tasks in running:
            if pending := list(tasks):
                await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))

    async def run(
        self,
        principal: Principal,
        session_id: str,
        message: str,
        context_override: LearningContext | None,
        deadline: float | None,
    ) -> AsyncGenerator[ChatEvent, None]:
        started = time.monotonic()
        running = asyncio.current_task()
        if running is not None and running not in self._turns:
            self._turns.add(running)
            running.add_done_callback(self._turns.discard)
        # The question is redacted, embedded, parsed and moderated while it is stored (what leaves the process
        # is redacted; a message the store will refuse is none of these).
        storing = asyncio.ensure_future(self._store_question(principal, session_id, message, context_override))
        parsing: asyncio.Future[QuestionAnalysis] | None = None
        moderating: asyncio.Future[Verdict] | None = None
        try:
            safe_question = (await asyncio.to_thread(redact, message)).text if _storable(message) else ""
            if safe_question:
                self._search.prefetch(safe_question)
                if not self._llm.upstream_likely():
                    # The offline engine answers from the question's parse; a model's turn parses only what
                    # it needs, and later (`gather_turn`).
                    parsing = asyncio.ensure_future(asyncio.to_thread(analyse_question, safe_question))
                moderating = asyncio.ensure_future(self._moderator.check(message, redacted=safe_question))
            with tracing.span("chat.store_question"):
                stored = await asyncio.shield(storing)
            turn = _new_turn(principal, session_id, message, stored, started)
        except BaseException as exc:
            for pending in (parsing, moderating):
                if pending is not None:
                    pending.cancel()
            if isinstance(exc, asyncio.CancelledError):
                self._detach(self._answer_cut_while_storing(storing, principal, session_id, message, started, deadline))
            elif not storing.done():
                storing.cancel()
            raise
        try:
            events, key = await self._open(turn, deadline, stored, safe_question, parsing, moderating)
        except BaseException as exc:
            for pending in (parsing, moderating):
                if pending is not None:
                    pending.cancel()
            if isinstance(exc, asyncio.CancelledError):
                # Cut off before the model was called (a deadline of a few tens of milliseconds lands here):
                # recorded like a cut mid-answer, with nothing said yet.
                self._detach(self._store_answer(turn, _cut_reason(deadline), None))
            else:
                await self._release(turn)
            raise

        # A model's answer reaches the student a moderated sentence at a time (`server.chat.release`). Who answers
        # is known at the first text: the supportive reply may take the model's place (`_after_verdict`).
        release: SentenceRelease | None = None
        speaking = False
        try:
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        if not speaking:
                            speaking = True
                            release = SentenceRelease(self._moderator) if self._holds_back(turn) else None
                        text = event.text if release is None else await release.take(event.text)
                        if text:
                            yield _relayed(turn, text)
                        if release is not None and release.flagged:
                            break
                    else:
                        turn.completion = event
            if release is not None and (text := await release.rest()):
                yield _relayed(turn, text)
        except UpstreamError as error:
            if release is not None:
                # The held text goes out (checked) before the partial answer is stored; a cancel meanwhile (the
                # check, or the write of that chunk) ends the turn like any other cut.
                try:
                    if text := await release.rest():
                        yield _relayed(turn, text)
                except BaseException:
                    self._detach(self._store_answer(turn, _cut_reason(deadline), None))
                    raise
            if not turn.parts:
                await self._finish_shielded(turn, ERROR, error=error)
                raise
            logger.warning("upstream broke off mid-answer", extra={"reason": error.reason})
            yield await self._finish_shielded(turn, ERROR, error=error)
            return
        except ProviderError as error:
            reason = DEADLINE if isinstance(error, DeadlineExceeded) else ERROR
            await self._finish_shielded(turn, reason, error=error)
            raise
        except Exception:
            await self._finish_quietly(turn, ERROR)
            raise
        except BaseException:
            # Cancelled by the client or the deadline, or closed by the transport: the upstream stream is
            # already closed (aclosing above); what was said is stored on its own while the cancellation
            # propagates at once (the call's stream slot is free before the write ends).
            self._detach(self._store_answer(turn, _cut_reason(deadline), None))
            raise
        finally:
            if moderating is not None:
                moderating.cancel()

        completion = turn.completion
        finish = _FINISH_REASONS.get(completion.finish_reason, STOP) if completion else STOP
        if release is not None and release.verdict is not None and release.flagged:
            finish = CONTENT_FILTER
            metrics.count_moderation_flag("chat_output", release.verdict.category)
            logger.warning(
                "moderation stopped a streamed answer",
                extra={"category": release.verdict.category, "detector": release.verdict.detector},
            )
        final = await self._finish_shielded(turn, finish)
        if key and turn.answered_by_model and finish == STOP and turn.text and final.grounded:
            await self._llm.cache.put(
                key, CachedAnswer(turn.text, completion.finish_reason if completion else "stop", turn.model)
            )
        yield final

    def _holds_back(self, turn: TurnState) -> bool:
        """Whether this answer is released sentence by sentence after moderation: a model writes it (the
        offline engine quotes the lecture; a cached answer passed when it was first streamed)."""
        settings = self._settings
        return settings.moderation_enabled and settings.moderate_streamed_answers and turn.answered_by_model

    # --- before the model ----------------------------------------------------------------------------------

    def _model_strayed(self, stored: _Stored) -> bool:
        """Whether the model's recent answers in this session failed the grounding check often enough that the
        offline engine answers instead (as in an outage, marked `fallback`)."""
        if not self._llm.upstream_likely() or stored.ungrounded < UNGROUNDED_LIMIT:
            return False
        logger.warning("the model's answers in a session were not grounded; the offline engine answers")
        return True

    async def _flag(self, turn: TurnState, verdict: Verdict, excerpt: str) -> None:
        """Keep a flagged question for the course's instructors (its personal data redacted)."""
        message = f"sessions/{turn.session_id}/messages/{turn.user_message_id}"
        place = FlagPlace(turn.principal.user_id, turn.context.course_id, turn.context.video_id, "chat", message)
        await record_flag(self._db, place, verdict, excerpt)

    async def _prepare(
        self, turn: TurnState, stored: _Stored, safe_question: str, parsing: asyncio.Future[QuestionAnalysis] | None
    ) -> _Prepared:
        """The turn's preferences, spoiler limit, excerpts and evidence, and its budget reservation (or the
        refusal when the upper bound does not fit). Everything that leaves the process from here on is redacted
        (`safe_question`, redacted when the turn began); the stored question is as typed."""
        counter = self._llm.counter()
        strayed = self._model_strayed(stored)
        # The preferences and the experiment arm decide the spoiler limit, which the search needs only at its end.
        choosing = asyncio.ensure_future(self._choices(turn, stored))
        limiting = asyncio.ensure_future(_second(choosing))
        try:
            previous = _previous_question(stored.history)
            earlier = (await asyncio.to_thread(redact, previous)).text if previous else ""
            with tracing.span("chat.context"):
                gathered, refused = await _together(
                    gather_turn(
                        self._search,
                        self._sentences,
                        safe_question,
                        stored.context,
                        stored.references,
                        previous=earlier,
                        spoiler_limit=limiting,
                        parsing=parsing,
                        analyse=strayed or not self._llm.upstream_likely(),
                    ),
                    self._reserve(turn, stored, counter) if self._llm.upstream_likely() else _no_refusal(),
                )
            preferences, spoiler_limit = await choosing
        except BaseException:
            await _stop(limiting)
            await _stop(choosing)
            raise
        return _Prepared(preferences, spoiler_limit, gathered, refused, counter, strayed)

    async def _choices(self, turn: TurnState, stored: _Stored) -> tuple[PreferenceValues, float | None]:
        """The student's preferences and the turn's spoiler limit (None: spoilers allowed)."""
        preferences, spoilers_off = await asyncio.gather(
            self._preferences.get(turn.principal.user_id),
            self._assignments.in_arm(turn.principal, stored.context.course_id, Lever.NO_SPOILERS, NO_SPOILERS_ARM),
        )
        if (preferences.no_spoilers or spoilers_off) and stored.context.video_id:
            return preferences, stored.context.position_seconds + self._settings.spoiler_lookahead_seconds
        return preferences, None

    async def _open(
        self,
        turn: TurnState,
        deadline: float | None,
        stored: _Stored,
        safe_question: str,
        parsing: asyncio.Future[QuestionAnalysis] | None,
        moderating: asyncio.Future[Verdict] | None,
    ) -> tuple[AsyncGenerator[StreamEvent, None], str]:
        """Everything up to the model call: context, prompt, redaction, cache, budget, route.
        Returns the answer's event stream and its cache key ("" when the answer is not cacheable).
        The question's context is gathered, and its answer begun, while it is moderated (`_after_verdict`). A
        message the in-process phrases read as self-harm waits for the verdict before any model call, and gets
        the supportive reply whatever the gathering did (it is stopped, and a reservation it made is released)."""
        preparing = asyncio.ensure_future(self._prepare(turn, stored, safe_question, parsing))
        held = moderating if moderating is not None and reads_as_self_harm(turn.question) else None
        try:
            verdict = await self._verdict(turn, held, safe_question) if held is not None else Verdict(False)
        except BaseException:
            await _stop(preparing)
            raise
        if verdict.category == SELF_HARM:
            await _stop(preparing)
            if parsing is not None:
                parsing.cancel()
            turn.supportive = True
            await self._release(turn)
            return _replay(CachedAnswer(SUPPORTIVE_REPLY, "stop", SUPPORTIVE_MODEL)), ""
        prepared = await preparing
        preferences, spoiler_limit, counter = prepared.preferences, prepared.spoiler_limit, prepared.counter
        gathered, refused = prepared.gathered, prepared.refused
        sources, evidence = gathered.sources, gathered.evidence
        turn.cited = evidence.by_label
        persona = persona_for(preferences.personality, preferences.response_length)
        with tracing.span("chat.prompt"):
            prompt = self._prompt(turn, stored, persona, sources, counter, spoiler_limit, SOURCE_TOKEN_BUDGET)
            redacted = await asyncio.to_thread(redact_messages, prompt.messages)
        turn.prompt = prompt
        if redacted.total:
            logger.info("pii redacted before the model call", extra={"counts": redacted.counts})
        params = ChatParams(
            model=budgeted_model(self._settings, turn.reservation),
            temperature=persona.temperature,
            max_tokens=persona.max_tokens,
            deadline=deadline,
            user=pseudonymous_user(turn.principal.user_id),
        )

        async def offline_request() -> OfflineRequest:
            question, unknown_terms = await analysed(gathered, self._sentences, safe_question)
            return OfflineRequest(
                question=question,
                evidence=evidence.items,
                sources=sources,
                video_id=stored.context.video_id,
                position_seconds=stored.context.position_seconds if stored.context.video_id else None,
                persona=persona,
                embedding_model=self._search.embedding_model,
                unanalysed=evidence.unanalysed,
                unknown_terms=unknown_terms,
                ahead=evidence.ahead,
            )

        key = ""
        hit: CachedAnswer | None = None
        if self._llm.online:
            key = cache_key(
                params.model, redacted.messages, temperature=params.temperature, max_tokens=params.max_tokens
            )
            hit = await self._llm.cache.get(key)
        pending = None if held is not None else moderating
        if hit is not None:
            turn.cached_model = hit.model
            await self._release(turn)
            return self._after_verdict(turn, _replay(hit), pending, safe_question), key
        if refused is not None:
            # The upper bound did not fit what the student has left: fit the real turn to it.
            prompt, answer_tokens = await self._fit(turn, stored, persona, sources, counter, spoiler_limit, refused)
            turn.prompt = prompt
            redacted = await asyncio.to_thread(redact_messages, prompt.messages)
            params = replace(params, max_tokens=answer_tokens, model=budgeted_model(self._settings, turn.reservation))
            key = cache_key(
                params.model, redacted.messages, temperature=params.temperature, max_tokens=params.max_tokens
            )
        routed = self._llm.open_chat(redacted.messages, params, offline_request, offline=prepared.strayed)
        turn.routed = routed
        if routed.offline:
            await self._release(turn)
        return self._after_verdict(turn, routed.events(), pending, safe_question), key

    def _after_verdict(
        self,
        turn: TurnState,
        events: AsyncGenerator[StreamEvent, None],
        moderating: asyncio.Future[Verdict] | None,
        excerpt: str,
    ) -> AsyncGenerator[StreamEvent, None]:
        """`events`, held until the question's verdict (`moderating`, None when it is already decided)."""
        return events if moderating is None else self._released_after_verdict(turn, events, moderating, excerpt)

    async def _released_after_verdict(
        self,
        turn: TurnState,
        events: AsyncGenerator[StreamEvent, None],
        moderating: asyncio.Future[Verdict],
        excerpt: str,
    ) -> AsyncGenerator[StreamEvent, None]:
        """The answer, begun while its question is still being moderated (a moderation endpoint takes about
        0.1-0.3 s, a model's first token usually longer), released only once the verdict is in. A statement of
        self-harm only the endpoint recognises gets the supportive reply: the answer's stream is closed unread
        (what the upstream spent on it is the platform's, like the moderation call) and its reservation
        released."""
        verdict: Verdict | None = None
        try:
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    if verdict is None:
                        verdict = await self._verdict(turn, moderating, excerpt)
                        if verdict.category == SELF_HARM:
                            break
                    yield event
        except Exception:
            if verdict is None:
                # The answer failed before it began: a flagged question is still kept for the instructors.
                with contextlib.suppress(Exception):
                    await self._verdict(turn, moderating, excerpt)
            raise
        if verdict is not None and verdict.category == SELF_HARM:
            # The turn ends as one decided before any answer: neither the cache's nor the engine's.
            turn.supportive, turn.cached_model, turn.routed = True, "", None
            await self._release(turn)
            async for event in _replay(CachedAnswer(SUPPORTIVE_REPLY, "stop", SUPPORTIVE_MODEL)):
                yield event

    async def _verdict(self, turn: TurnState, moderating: asyncio.Future[Verdict], excerpt: str) -> Verdict:
        """The question's verdict; a flagged question is kept for the course's instructors."""
        with tracing.span("chat.moderation"):
            verdict = await moderating
        if verdict.flagged:
            await self._flag(turn, verdict, excerpt)
        return verdict

    async def _reserve(self, turn: TurnState, stored: _Stored, counter: TokenCounter) -> QuotaExceeded | None:
        """Reserve an upper bound of the turn's tokens (refunded down to the real usage on commit), so the
        reservation runs alongside retrieval instead of after it; the refusal when it does not fit (the turn
        may still fit, see `_fit`)."""
        ceiling = prompt_ceiling(
            context=stored.context,
            history=stored.history,
            question=turn.question,
            counter=counter,
            history_budget=self._settings.history_token_budget,
        )
        try:
            with tracing.span("chat.budget"):
                turn.reservation = await self._budget.reserve(
                    turn.principal, ceiling + MAX_ANSWER_TOKENS, operation="chat", count_refusal=False
                )
        except QuotaExceeded as refusal:
            return refusal
        return None

    def _prompt(
        self,
        turn: TurnState,
        stored: _Stored,
        persona: Persona,
        sources: list[Source],
        counter: TokenCounter,
        spoiler_limit: float | None,
        source_budget: int,
    ) -> Prompt:
        return build_prompt(
            persona=persona,
            context=stored.context,
            sources=sources,
            history=stored.history,
            question=turn.question,
            counter=counter,
            history_budget=self._settings.history_token_budget,
            spoiler_limit=spoiler_limit,
            source_budget=source_budget,
        )

    async def _fit(
        self,
        turn: TurnState,
        stored: _Stored,
        persona: Persona,
        sources: list[Source],
        counter: TokenCounter,
        spoiler_limit: float | None,
        refused: QuotaExceeded,
    ) -> tuple[Prompt, int]:
        """The prompt and answer length that fit the student's remaining tokens, reserved; `refused` when
        not even a `MIN_ANSWER_TOKENS` answer fits with the smallest excerpt budget."""
        principal = turn.principal
        windows = await self._budget.status(principal.user_id, principal.tier.value)
        available = min(window.tokens_remaining for window in windows)
        for source_budget in (SOURCE_TOKEN_BUDGET, *FITTED_SOURCE_BUDGETS):
            prompt = self._prompt(turn, stored, persona, sources, counter, spoiler_limit, source_budget)
            answer_tokens = min(persona.max_tokens, available - prompt.prompt_tokens)
            if answer_tokens >= MIN_ANSWER_TOKENS:
                turn.reservation = await self._budget.reserve(
                    principal, prompt.prompt_tokens + answer_tokens, operation="chat"
                )
                logger.info(
                    "chat turn fitted to the remaining token budget",
                    extra={"available": available, "prompt_tokens": prompt.prompt_tokens, "max_tokens": answer_tokens},
                )
                return prompt, answer_tokens
        metrics.count_limiter_rejection("token_budget")
        raise refused

    async def _store_question(
        self, principal: Principal, session_id: str, message: str, override: LearningContext | None
    ) -> _Stored:
        """Check ownership, validate, and commit the question (it survives whatever happens next): one statement
        that also reads the session's context, history, references and recent grounding."""
        message_id = uuid.uuid4().hex
        try:
            validate_message(message)
            context = validate_context(override) if override is not None else None
        except InvalidArgument:
            # A session the caller does not have is not found, whatever the message.
            async with self._db.reader() as session:
                if await repo.get_session(session, session_id, principal.user_id) is None:
                    raise NotFound("session not found", reason="SESSION_NOT_FOUND") from None
            raise
        async with self._db.autocommit() as connection:
            added = await repo.add_question(
                connection,
                session_id=session_id,
                user_id=principal.user_id,
                message_id=message_id,
                content=message,
                history_limit=HISTORY_FETCH_LIMIT,
                answers=UNGROUNDED_WINDOW,
            )
        if added is None:
            raise NotFound("session not found", reason="SESSION_NOT_FOUND")
        return _Stored(
            user_message_id=message_id,
            context=added.context if context is None else context,
            references=[reference_from_json(reference) for reference in added.references],
            history=[HistoryMessage(role, content) for role, content in added.history],
            ungrounded=added.ungrounded,
        )

    # --- after the model -----------------------------------------------------------------------------------

    async def _finish_shielded(
        self, turn: TurnState, finish_reason: str, *, error: ProviderError | None = None
    ) -> AnswerFinal:
        """Run the recorder's `finish` in a task of its own (`_detach`): a cancellation of the RPC cannot cut the
        final write short."""
        return await asyncio.shield(self._detach(self._store_answer(turn, finish_reason, error)))

    async def _store_answer(self, turn: TurnState, finish_reason: str, error: ProviderError | None) -> AnswerFinal:
        with tracing.span("chat.store_answer", finish_reason=finish_reason):
            return await self._recorder.finish(turn, finish_reason, error)

    def _detach(self, write: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A final write in a task of its own: a cancellation of the call cannot cut it short, a cancelled call
        need not wait for it, and shutdown does (`aclose`). A failed write is logged."""
        task = asyncio.get_running_loop().create_task(write)
        self._background.add(task)
        task.add_done_callback(self._detached_done)
        return task

    def _detached_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.warning("storing a turn's answer failed: %s", type(error).__name__)

    async def _finish_quietly(self, turn: TurnState, finish_reason: str) -> None:
        """`_finish_shielded` on a path that is already failing: a failed write is logged (`_detach`), not raised."""
        with contextlib.suppress(Exception):
            await self._finish_shielded(turn, finish_reason)

    async def _answer_cut_while_storing(
        self,
        storing: asyncio.Future[_Stored],
        principal: Principal,
        session_id: str,
        message: str,
        started: float,
        deadline: float | None,
    ) -> None:
        """The call ended while its question was being stored: the store runs to its end, and a stored question
        gets its (empty) cut-off answer, so the session shows what happened."""
        try:
            stored = await storing
        except Exception:
            return
        await self._store_answer(
            _new_turn(principal, session_id, message, stored, started), _cut_reason(deadline), None
        )

    async def _release(self, turn: TurnState) -> None:
        await self._recorder.release(turn)


async def _no_refusal() -> QuotaExceeded | None:
    return None


def _relayed(turn: TurnState, text: str) -> AnswerDelta:
    """Text the student sees now: kept for the stored answer, and the first of it timed."""
    if turn.first_token_at is None:
        turn.first_token_at = time.monotonic()
        trace.get_current_span().add_event("chat.first_token")
        metrics.observe_time_to_first_token(turn.provider, turn.first_token_at - turn.started)
    turn.parts.append(text)
    return AnswerDelta(text)


def _new_turn(principal: Principal, session_id: str, message: str, stored: _Stored, started: float) -> TurnState:
    return TurnState(
        principal=principal,
        session_id=session_id,
        user_message_id=stored.user_message_id,
        question=message,
        context=stored.context,
        started=started,
    )


def _cut_reason(deadline: float | None) -> str:
    """Why a cancelled turn ended: its deadline (the upstream's, a margin before the call's) passed, or the
    client cancelled."""
    return DEADLINE if deadline is not None and time.monotonic() >= deadline else CANCELLED


def _storable(message: str) -> bool:
    try:
        validate_message(message)
    except InvalidArgument:
        return False
    return True


def _previous_question(history: Sequence[HistoryMessage]) -> str:
    """The session's last question before this one ("" in a new session)."""
    return next((message.content for message in reversed(history) if message.role == USER), "")


async def _together(first: Coroutine[Any, Any, A], second: Coroutine[Any, Any, B]) -> tuple[A, B]:
    """Run two steps concurrently. If one fails (or the caller is cancelled), the other is cancelled and
    waited for before the error propagates, so neither outlives the turn (a reservation made meanwhile is then
    on the turn, and released by the caller)."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        gathered = await asyncio.gather(*tasks)
        return gathered[0], gathered[1]
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _second(pair: Awaitable[tuple[Any, B]]) -> B:
    return (await pair)[1]


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it has ended (whatever it raised)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _replay(answer: CachedAnswer) -> AsyncGenerator[StreamEvent, None]:
    """A cached answer streamed like a fresh one, word by word, at no cost."""
    for word in re.findall(r"\S+\s*", answer.text):
        yield TextDelta(word)
        await asyncio.sleep(0)
    yield Completion(
        finish_reason=answer.finish_reason, prompt_tokens=0, completion_tokens=0, model=answer.model, text=answer.text
    )
