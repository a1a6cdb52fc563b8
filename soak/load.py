"""The soak's clients: chat conversations (some cancelled at a random moment), agent calls, interaction
tracking and transcript ingestion. Each worker is a closed loop with a short random pause, so the offered load
is the same at the start and at the end of a run; every RPC's status and every acknowledged write go to the
`Ledger`. Progress streams live in `soak.watching`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

import grpc
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import chat_service_pb2 as chat_pb
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as transcript_pb

from soak.ledger import CLIENT_CANCELLED, CancelledTurn, CompletedTurn, Ledger
from tests.support.clients import Client

COURSE_ID = "soak-course"
LECTURE_SECONDS = 120.0
CUE_SECONDS = 5.0
RPC_TIMEOUT = 60.0
INGEST_TIMEOUT = 120.0
TOPICS = (
    ("flexbox", "justify-content spreads items along the main axis and align-items centers them across it"),
    ("promises", "the event loop runs queued callbacks once the call stack is empty"),
    ("effects", "React runs the cleanup function of an effect before the next render"),
    ("caching", "Cache-Control max-age lets a browser reuse a response until it goes stale"),
    ("grid", "grid-template-columns defines tracks and fr units share the free space between them"),
)
# Asked as the first turn of a conversation now and then, at one fixed place in a lecture: the same prompt
# again is served from the response cache.
POPULAR_QUESTIONS = ("How do I center an element?", "What does await do?", "When does an effect run?")
FINISH_STOP = chat_pb.FinishReason.FINISH_REASON_STOP
FINISH_ERROR = chat_pb.FinishReason.FINISH_REASON_ERROR


@dataclass(frozen=True)
class Pacing:
    """Think time between a worker's calls, and the share of chat turns the client cancels."""

    pause_min: float = 0.05
    pause_max: float = 0.4
    chat_cancel_share: float = 0.25
    chat_cancel_within: float = 0.8


def lecture_id(index: int) -> str:
    return f"soak-lecture-{index}"


def transcript_vtt(topic: int, variant: str, seconds: float = LECTURE_SECONDS) -> str:
    """A small WebVTT lecture on one topic; `variant` makes its content (and so its hash) unique."""
    name, sentence = TOPICS[topic % len(TOPICS)]
    cues = ["WEBVTT", ""]
    for index in range(int(seconds // CUE_SECONDS)):
        start, end = index * CUE_SECONDS, (index + 1) * CUE_SECONDS
        cues += [f"{_vtt_time(start)} --> {_vtt_time(end)}", f"Part {index} on {name} ({variant}): {sentence}.", ""]
    return "\n".join(cues)


def _vtt_time(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"00:{int(minutes):02d}:{rest:06.3f}"


def context(rng: random.Random, lectures: int) -> common_pb2.LearningContext:
    return common_pb2.LearningContext(
        course_id=COURSE_ID,
        video_id=lecture_id(rng.randrange(lectures)),
        position_seconds=rng.uniform(0, LECTURE_SECONDS),
    )


class Gate:
    """Lets the run hold every worker between two calls, so the server can be observed with nothing in flight."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._held = 0
        self._changed = asyncio.Condition()

    async def passage(self) -> None:
        """Called by a worker between calls; waits while the gate is closed."""
        if self._open.is_set():
            return
        async with self._changed:
            self._held += 1
            self._changed.notify_all()
        try:
            await self._open.wait()
        finally:
            self._held -= 1

    async def close(self, workers: int) -> None:
        """Close the gate and wait until all `workers` are held (their last call finished)."""
        self._open.clear()
        async with self._changed:
            await self._changed.wait_for(lambda: self._held >= workers)

    def open(self) -> None:
        self._open.set()


class Worker(ABC):
    """One closed-loop client on its own channel."""

    def __init__(
        self,
        name: str,
        client: Client,
        ledger: Ledger,
        stop: asyncio.Event,
        gate: Gate,
        seed: int,
        pacing: Pacing,
        lectures: int,
    ) -> None:
        self.name = name
        self.client = client
        self.ledger = ledger
        self.stop = stop
        self.gate = gate
        self.rng = random.Random(f"{seed}-{name}")
        self.pacing = pacing
        self.lectures = lectures
        self.counter = 0

    @abstractmethod
    async def run(self) -> None:
        """Call the server in a loop until `stop` is set; return after the last call finished."""

    async def pause(self, factor: float = 1.0) -> None:
        """Think time (cut short when the run stops), then the gate."""
        seconds = factor * self.rng.uniform(self.pacing.pause_min, self.pacing.pause_max)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        await self.gate.passage()

    def next_id(self) -> str:
        self.counter += 1
        return f"{self.name}-{self.counter}"


class ChatWorker(Worker):
    """Conversations of 1 to 4 turns in a fresh session; a cancelled or failed turn ends the conversation."""

    async def run(self) -> None:
        while not self.stop.is_set():
            created = await self.ledger.unary(
                "CreateSession",
                self.client.chat.CreateSession(
                    chat_pb.CreateSessionRequest(
                        title=self.next_id(), learning_context=context(self.rng, self.lectures)
                    ),
                    timeout=RPC_TIMEOUT,
                ),
            )
            if created is not None:
                for turn in range(self.rng.randint(1, 4)):
                    if self.stop.is_set() or not await self.turn(created.session, first=turn == 0):
                        break
                    await self.pause()
                if self.rng.random() < 0.2:
                    await self.ledger.unary(
                        "ListMessages",
                        self.client.chat.ListMessages(
                            chat_pb.ListMessagesRequest(parent=created.session.name, page_size=50),
                            timeout=RPC_TIMEOUT,
                        ),
                    )
            await self.pause()

    async def turn(self, session: chat_pb.Session, *, first: bool) -> bool:
        """One StreamChat; True when it completed (the conversation may go on)."""
        override = None
        if first and self.rng.random() < 0.15:
            question = self.rng.choice(POPULAR_QUESTIONS)
            override = common_pb2.LearningContext(course_id=COURSE_ID, video_id=lecture_id(0), position_seconds=30.0)
        else:
            _, sentence = TOPICS[self.rng.randrange(len(TOPICS))]
            question = f"Can you explain why {sentence}? ({self.next_id()})"
        cancel_after = (
            self.rng.uniform(0.0, self.pacing.chat_cancel_within)
            if self.rng.random() < self.pacing.chat_cancel_share
            else None
        )
        call = self.client.chat.StreamChat(
            chat_pb.StreamChatRequest(session=session.name, message=question, learning_context=override),
            timeout=RPC_TIMEOUT,
        )
        parts: list[str] = []
        finals: list[chat_pb.StreamChatResponse] = []

        async def read() -> None:
            async for chunk in call:
                parts.append(chunk.text)
                if chunk.finish_reason:
                    finals.append(chunk)

        reader = asyncio.ensure_future(read())
        cancelled = False
        if cancel_after is not None:
            done, _ = await asyncio.wait({reader}, timeout=cancel_after)
            if not done and not finals:
                cancelled = call.cancel()
        try:
            await reader
        except grpc.aio.AioRpcError as error:
            if not (cancelled and error.code() == grpc.StatusCode.CANCELLED):
                self.ledger.error("StreamChat", error)
                return False
        except asyncio.CancelledError:
            # Reading a call this client cancelled raises CancelledError; anything else is this task's own.
            if not (cancelled and reader.cancelled()):
                raise
        if finals:
            final = finals[0]
            self.ledger.status("StreamChat", "OK" if not cancelled else CLIENT_CANCELLED)
            self.ledger.completed_turns.append(
                CompletedTurn(
                    session_id=session.session_id,
                    question=question,
                    answer="".join(parts),
                    user_message_id=final.user_message_id,
                    assistant_message_id=final.assistant_message_id,
                    interaction_id=final.interaction_id,
                    cut_off=final.finish_reason == FINISH_ERROR,
                )
            )
            self.ledger.notes["chat answers cut off upstream (finish ERROR)"] += final.finish_reason == FINISH_ERROR
            self.ledger.notes["chat answers from the offline fallback"] += final.fallback
            self.ledger.notes["chat answers replayed from the cache"] += final.cached
            return not cancelled
        if cancelled:
            self.ledger.status("StreamChat", CLIENT_CANCELLED)
            self.ledger.cancelled_turns.append(CancelledTurn(session.session_id, question, "".join(parts)))
            return False
        self.ledger.status("StreamChat", "OK without a final chunk")
        return False


class AgentWorker(Worker):
    """Hints, quizzes (and answers to them), reflections, learning paths and preferences, at random."""

    async def run(self) -> None:
        actions = (self.hint, self.quiz, self.reflection, self.learning_path, self.preferences)
        while not self.stop.is_set():
            await self.rng.choice(actions)()
            await self.pause()

    def acknowledge(self, interaction_id: str) -> None:
        if interaction_id:
            self.ledger.interactions.add(interaction_id)

    async def hint(self) -> None:
        reply = await self.ledger.unary(
            "GetHint",
            self.client.agents.GetHint(
                agent_pb.GetHintRequest(learning_context=context(self.rng, self.lectures), struggle="I am lost here"),
                timeout=RPC_TIMEOUT,
            ),
        )
        if reply is not None:
            self.acknowledge(reply.interaction_id)

    async def quiz(self) -> None:
        start = self.rng.choice((0.0, 30.0, 60.0))
        reply = await self.ledger.unary(
            "GenerateQuiz",
            self.client.agents.GenerateQuiz(
                agent_pb.GenerateQuizRequest(
                    video_id=lecture_id(self.rng.randrange(self.lectures)),
                    range=common_pb2.TimeRange(start_seconds=start, end_seconds=start + 60.0),
                    question_count=self.rng.randint(1, 3),
                ),
                timeout=RPC_TIMEOUT,
            ),
        )
        if reply is None:
            return
        self.acknowledge(reply.interaction_id)
        for question in reply.quiz.questions:
            attempt_id = uuid.uuid4().hex
            answered = await self.ledger.unary(
                "SubmitQuizAnswer",
                self.client.agents.SubmitQuizAnswer(
                    agent_pb.SubmitQuizAnswerRequest(
                        quiz=reply.quiz.name,
                        question_id=question.question_id,
                        selected_index=self.rng.randrange(max(1, len(question.options))),
                        attempt_id=attempt_id,
                    ),
                    timeout=RPC_TIMEOUT,
                ),
            )
            if answered is not None:
                self.ledger.quiz_attempts.add(attempt_id)

    async def reflection(self) -> None:
        reply = await self.ledger.unary(
            "GenerateReflection",
            self.client.agents.GenerateReflection(
                agent_pb.GenerateReflectionRequest(learning_context=context(self.rng, self.lectures)),
                timeout=RPC_TIMEOUT,
            ),
        )
        if reply is not None:
            self.acknowledge(reply.interaction_id)

    async def learning_path(self) -> None:
        struggling = [name for name, _ in self.rng.sample(TOPICS, 2)]
        reply = await self.ledger.unary(
            "GenerateLearningPath",
            self.client.agents.GenerateLearningPath(
                agent_pb.GenerateLearningPathRequest(course_id=COURSE_ID, struggling_concepts=struggling),
                timeout=RPC_TIMEOUT,
            ),
        )
        if reply is not None:
            self.acknowledge(reply.interaction_id)

    async def preferences(self) -> None:
        await self.ledger.unary(
            "GetPreferences",
            self.client.agents.GetPreferences(
                agent_pb.GetPreferencesRequest(name="users/me/preferences"), timeout=RPC_TIMEOUT
            ),
        )


class AnalyticsWorker(Worker):
    """Interaction tracking, with a read of usage or analytics now and then."""

    async def run(self) -> None:
        while not self.stop.is_set():
            reply = await self.ledger.unary(
                "RecordInteraction",
                self.client.analytics.RecordInteraction(
                    analytics_pb.RecordInteractionRequest(
                        trigger=self.rng.choice(("quick_action:explain", "quick_action:summarize", "seek_help")),
                        learning_context=context(self.rng, self.lectures),
                        attributes={"soak": self.next_id()},
                    ),
                    timeout=RPC_TIMEOUT,
                ),
            )
            if reply is not None:
                self.ledger.interactions.add(reply.interaction.interaction_id)
            roll = self.rng.random()
            if roll < 0.1:
                await self.ledger.unary(
                    "GetUsage",
                    self.client.analytics.GetUsage(analytics_pb.GetUsageRequest(user="users/me"), timeout=RPC_TIMEOUT),
                )
            elif roll < 0.2:
                await self.ledger.unary(
                    "GetUserAnalytics",
                    self.client.analytics.GetUserAnalytics(
                        analytics_pb.GetUserAnalyticsRequest(user="users/me"), timeout=RPC_TIMEOUT
                    ),
                )
            await self.pause()


async def ingest(client: Client, ledger: Ledger, video_id: str, content: str) -> bool:
    """IngestTranscript, then WatchIngestJob to its end; True when the job SUCCEEDED."""
    started = await ledger.unary(
        "IngestTranscript",
        client.transcripts.IngestTranscript(
            transcript_pb.IngestTranscriptRequest(
                request_id=uuid.uuid4().hex,
                video_id=video_id,
                course_id=COURSE_ID,
                title=video_id,
                format=transcript_pb.TranscriptFormat.TRANSCRIPT_FORMAT_WEBVTT,
                content=content,
                language="en",
            ),
            timeout=RPC_TIMEOUT,
        ),
    )
    if started is None:
        return False
    state = started.job.state
    call = client.transcripts.WatchIngestJob(
        transcript_pb.WatchIngestJobRequest(name=started.job.name), timeout=INGEST_TIMEOUT
    )
    try:
        async for update in call:
            state = update.job.state
    except grpc.aio.AioRpcError as error:
        ledger.error("WatchIngestJob", error)
        return False
    ledger.status("WatchIngestJob", "OK")
    if state == transcript_pb.IngestJobState.INGEST_JOB_STATE_SUCCEEDED:
        ledger.transcripts.add(video_id)
        return True
    ledger.notes[f"ingest jobs ended {transcript_pb.IngestJobState.Name(state)}"] += 1
    return False


# The uploads replace the transcripts of this many lectures in turn: the course stays the same size however long
# the run, so what the server holds per course (the corpus agents load) levels off like everything else; a
# course growing by dozens of lectures a minute made memory grow with it.
UPLOAD_SLOTS = 8


class IngestWorker(Worker):
    """An instructor uploading new versions of a few small lectures one after another, each awaited to its end."""

    async def run(self) -> None:
        while not self.stop.is_set():
            self.next_id()
            video_id = f"soak-upload-{self.name}-{self.counter % UPLOAD_SLOTS}"
            version = transcript_vtt(self.counter, f"{video_id} v{self.counter}", seconds=60.0)
            await ingest(self.client, self.ledger, video_id, version)
            await self.pause(factor=3.0)
