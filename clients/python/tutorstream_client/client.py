"""The async client: one channel, the bearer token on every call, errors raised as TutorstreamError."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tutorstream.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    common_pb2,
    transcript_service_pb2,
    transcript_service_pb2_grpc,
)

from tutorstream_client.errors import TutorstreamError

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_STREAM_TIMEOUT_SECONDS = 300.0
FORMATS = {
    ".vtt": transcript_service_pb2.TRANSCRIPT_FORMAT_WEBVTT,
    ".srt": transcript_service_pb2.TRANSCRIPT_FORMAT_SRT,
    ".json": transcript_service_pb2.TRANSCRIPT_FORMAT_JSON_SEGMENTS,
    ".txt": transcript_service_pb2.TRANSCRIPT_FORMAT_PLAIN_TEXT,
}

Response = TypeVar("Response")


def learning_context(
    *,
    video_id: str = "",
    course_id: str = "",
    position_seconds: float = 0.0,
    selected_range: tuple[float, float] | None = None,
) -> common_pb2.LearningContext:
    context = common_pb2.LearningContext(video_id=video_id, course_id=course_id, position_seconds=position_seconds)
    if selected_range is not None:
        context.selected_range.CopyFrom(
            common_pb2.TimeRange(start_seconds=selected_range[0], end_seconds=selected_range[1])
        )
    return context


def tls_credentials(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """TLS for the channel. The server's certificate must chain to a CA in `ca_file` (default: the system's
    trusted CAs); `cert_file` and `key_file` are this client's own certificate, for a server that requires one
    (mutual TLS). Raises OSError when a file cannot be read."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both cert_file and key_file")

    def read(path: str | Path | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file), private_key=read(key_file), certificate_chain=read(cert_file)
    )


def ingest_request_id(video_id: str, course_id: str, content: str) -> str:
    """Same transcript for the same video -> same id, so re-running an ingest returns the same job."""
    digest = hashlib.sha256(f"{course_id}\0{video_id}\0{content}".encode()).hexdigest()
    return f"cli-{digest[:40]}"


class AsyncTutorstreamClient:
    """Typed access to the four tutorstream services over native gRPC.

    Use as `async with AsyncTutorstreamClient(target, token) as client: ...`; over TLS pass
    `credentials=tls_credentials(ca_file=...)`. Every method raises `TutorstreamError` (with decoded
    ErrorInfo/RetryInfo/BadRequest/QuotaFailure) when the call fails.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT_SECONDS,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.token = token
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        options = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_permit_without_calls", 1)]
        if credentials is None:
            self._channel = aio.insecure_channel(target, options=options)
        else:
            self._channel = aio.secure_channel(target, credentials, options=options)
        self._chat = chat_service_pb2_grpc.ChatServiceStub(self._channel)
        self._agents = agent_service_pb2_grpc.AgentServiceStub(self._channel)
        self._transcripts = transcript_service_pb2_grpc.TranscriptServiceStub(self._channel)
        self._analytics = analytics_service_pb2_grpc.AnalyticsServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> AsyncTutorstreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    # --- plumbing -----------------------------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    async def _unary(self, method: Callable[..., Awaitable[Response]], request: Any) -> Response:
        try:
            return await method(request, metadata=self._metadata(), timeout=self.timeout)
        except aio.AioRpcError as error:
            raise TutorstreamError.from_rpc_error(error) from error

    async def _stream(self, method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
        call = method(request, metadata=self._metadata(), timeout=self.stream_timeout)
        try:
            async for response in call:
                yield response
        except aio.AioRpcError as error:
            raise TutorstreamError.from_rpc_error(error) from error
        finally:
            call.cancel()

    # --- health -------------------------------------------------------------------------------------

    async def health(self, service: str = "") -> str:
        """`SERVING`, `NOT_SERVING`, ... for the server (or one service) — needs no token."""
        try:
            response = await self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        except aio.AioRpcError as error:
            raise TutorstreamError.from_rpc_error(error) from error
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name

    # --- preferences --------------------------------------------------------------------------------

    async def get_preferences(self, user: str = "me") -> agent_service_pb2.Preferences:
        request = agent_service_pb2.GetPreferencesRequest(name=f"users/{user}/preferences")
        response: agent_service_pb2.GetPreferencesResponse = await self._unary(self._agents.GetPreferences, request)
        return response.preferences

    async def update_preferences(
        self, preferences: agent_service_pb2.Preferences, fields: Sequence[str], user: str = "me"
    ) -> agent_service_pb2.Preferences:
        update = agent_service_pb2.Preferences()
        update.CopyFrom(preferences)
        update.name = f"users/{user}/preferences"
        request = agent_service_pb2.UpdatePreferencesRequest(
            preferences=update, update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        )
        response: agent_service_pb2.UpdatePreferencesResponse = await self._unary(
            self._agents.UpdatePreferences, request
        )
        return response.preferences

    # --- transcripts --------------------------------------------------------------------------------

    async def ingest_transcript(
        self,
        *,
        video_id: str,
        course_id: str,
        content: str,
        transcript_format: transcript_service_pb2.TranscriptFormat.ValueType,
        title: str = "",
        language: str = "",
        duration_seconds: float = 0.0,
        request_id: str | None = None,
    ) -> transcript_service_pb2.IngestJob:
        request = transcript_service_pb2.IngestTranscriptRequest(
            request_id=request_id or ingest_request_id(video_id, course_id, content),
            video_id=video_id,
            course_id=course_id,
            title=title,
            format=transcript_format,
            content=content,
            language=language,
            duration_seconds=duration_seconds,
        )
        response: transcript_service_pb2.IngestTranscriptResponse = await self._unary(
            self._transcripts.IngestTranscript, request
        )
        return response.job

    async def watch_ingest_job(self, name: str) -> AsyncIterator[transcript_service_pb2.IngestJob]:
        request = transcript_service_pb2.WatchIngestJobRequest(name=name)
        async for response in self._stream(self._transcripts.WatchIngestJob, request):
            yield response.job

    async def get_ingest_job(self, name: str) -> transcript_service_pb2.IngestJob:
        request = transcript_service_pb2.GetIngestJobRequest(name=name)
        response: transcript_service_pb2.GetIngestJobResponse = await self._unary(
            self._transcripts.GetIngestJob, request
        )
        return response.job

    async def get_transcript(self, video_id: str, *, full: bool = False) -> transcript_service_pb2.Transcript:
        view = transcript_service_pb2.TRANSCRIPT_VIEW_FULL if full else transcript_service_pb2.TRANSCRIPT_VIEW_BASIC
        request = transcript_service_pb2.GetTranscriptRequest(name=f"videos/{video_id}/transcript", view=view)
        response: transcript_service_pb2.GetTranscriptResponse = await self._unary(
            self._transcripts.GetTranscript, request
        )
        return response.transcript

    async def list_transcripts(self, course_id: str = "") -> list[transcript_service_pb2.Transcript]:
        found: list[transcript_service_pb2.Transcript] = []
        page_token = ""
        while True:
            request = transcript_service_pb2.ListTranscriptsRequest(
                course_id=course_id, page_size=200, page_token=page_token
            )
            response = await self._unary(self._transcripts.ListTranscripts, request)
            found.extend(response.transcripts)
            page_token = response.next_page_token
            if not page_token:
                return found

    async def search(
        self,
        query: str,
        *,
        video_id: str = "",
        course_id: str = "",
        limit: int = 5,
        time_window: tuple[float, float] | None = None,
    ) -> transcript_service_pb2.SearchTranscriptsResponse:
        request = transcript_service_pb2.SearchTranscriptsRequest(
            query=query, video_id=video_id, course_id=course_id, limit=limit
        )
        if time_window is not None:
            request.time_window.CopyFrom(common_pb2.TimeRange(start_seconds=time_window[0], end_seconds=time_window[1]))
        return await self._unary(self._transcripts.SearchTranscripts, request)

    # --- chat ---------------------------------------------------------------------------------------

    async def create_session(
        self, *, title: str = "", context: common_pb2.LearningContext | None = None
    ) -> chat_service_pb2.Session:
        request = chat_service_pb2.CreateSessionRequest(title=title, learning_context=context)
        response: chat_service_pb2.CreateSessionResponse = await self._unary(self._chat.CreateSession, request)
        return response.session

    async def stream_chat(
        self, session: str, message: str, *, context: common_pb2.LearningContext | None = None
    ) -> AsyncIterator[chat_service_pb2.StreamChatResponse]:
        request = chat_service_pb2.StreamChatRequest(session=session, message=message, learning_context=context)
        async for chunk in self._stream(self._chat.StreamChat, request):
            yield chunk

    async def list_messages(self, session: str) -> list[chat_service_pb2.Message]:
        found: list[chat_service_pb2.Message] = []
        page_token = ""
        while True:
            request = chat_service_pb2.ListMessagesRequest(parent=session, page_size=200, page_token=page_token)
            response = await self._unary(self._chat.ListMessages, request)
            found.extend(response.messages)
            page_token = response.next_page_token
            if not page_token:
                return found

    # --- agents -------------------------------------------------------------------------------------

    async def get_hint(
        self, context: common_pb2.LearningContext, *, struggle: str = ""
    ) -> agent_service_pb2.GetHintResponse:
        request = agent_service_pb2.GetHintRequest(learning_context=context, struggle=struggle)
        return await self._unary(self._agents.GetHint, request)

    async def generate_quiz(
        self,
        video_id: str,
        *,
        time_range: tuple[float, float] | None = None,
        question_count: int = 3,
        difficulty: common_pb2.Difficulty.ValueType = common_pb2.DIFFICULTY_MEDIUM,
    ) -> agent_service_pb2.GenerateQuizResponse:
        request = agent_service_pb2.GenerateQuizRequest(
            video_id=video_id, question_count=question_count, difficulty=difficulty
        )
        if time_range is not None:
            request.range.CopyFrom(common_pb2.TimeRange(start_seconds=time_range[0], end_seconds=time_range[1]))
        return await self._unary(self._agents.GenerateQuiz, request)

    async def submit_quiz_answer(
        self, quiz: str, question_id: str, selected_index: int, *, attempt_id: str | None = None
    ) -> agent_service_pb2.SubmitQuizAnswerResponse:
        request = agent_service_pb2.SubmitQuizAnswerRequest(
            quiz=quiz,
            question_id=question_id,
            selected_index=selected_index,
            attempt_id=attempt_id or uuid.uuid4().hex,
        )
        return await self._unary(self._agents.SubmitQuizAnswer, request)

    async def generate_reflection(
        self, context: common_pb2.LearningContext
    ) -> agent_service_pb2.GenerateReflectionResponse:
        request = agent_service_pb2.GenerateReflectionRequest(learning_context=context)
        return await self._unary(self._agents.GenerateReflection, request)

    async def generate_learning_path(self, course_id: str) -> agent_service_pb2.GenerateLearningPathResponse:
        request = agent_service_pb2.GenerateLearningPathRequest(course_id=course_id)
        return await self._unary(self._agents.GenerateLearningPath, request)

    async def watch_video(
        self,
        requests: AsyncIterable[agent_service_pb2.WatchVideoRequest],
    ) -> AsyncIterator[agent_service_pb2.WatchVideoResponse]:
        """The bidirectional progress stream: the first request names the watch session and video."""
        call = self._agents.WatchVideo(requests, metadata=self._metadata())
        try:
            async for response in call:
                yield response
        except aio.AioRpcError as error:
            raise TutorstreamError.from_rpc_error(error) from error
        finally:
            call.cancel()

    async def publish_video_events(
        self, request: agent_service_pb2.PublishVideoEventsRequest
    ) -> agent_service_pb2.PublishVideoEventsResponse:
        return await self._unary(self._agents.PublishVideoEvents, request)

    # --- analytics ----------------------------------------------------------------------------------

    async def get_usage(self, user: str = "me") -> analytics_service_pb2.GetUsageResponse:
        request = analytics_service_pb2.GetUsageRequest(user=f"users/{user}")
        return await self._unary(self._analytics.GetUsage, request)

    async def get_user_analytics(
        self, user: str = "me", *, course_id: str = ""
    ) -> analytics_service_pb2.GetUserAnalyticsResponse:
        request = analytics_service_pb2.GetUserAnalyticsRequest(user=f"users/{user}", course_id=course_id)
        return await self._unary(self._analytics.GetUserAnalytics, request)

    async def get_video_analytics(
        self, video_id: str, *, max_peaks: int = 5
    ) -> analytics_service_pb2.GetVideoAnalyticsResponse:
        request = analytics_service_pb2.GetVideoAnalyticsRequest(video_id=video_id, max_peaks=max_peaks)
        return await self._unary(self._analytics.GetVideoAnalytics, request)

    async def rate_interaction(
        self, interaction_id: str, rating: int, *, reason: str = ""
    ) -> analytics_service_pb2.Interaction:
        request = analytics_service_pb2.RateInteractionRequest(
            name=f"interactions/{interaction_id}", rating=rating, reason=reason
        )
        response: analytics_service_pb2.RateInteractionResponse = await self._unary(
            self._analytics.RateInteraction, request
        )
        return response.interaction
