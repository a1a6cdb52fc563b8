"""AgentService transport: proto in, validate, call the domain services, proto out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol

from grpc import aio
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import agent_service_pb2_grpc as pb_grpc
from tutorstream.v1 import common_pb2

from server.agents.domain import USER_TRIGGER
from server.agents.preferences import PreferencesService
from server.agents.protos import (
    DIFFICULTY_FROM_PROTO,
    answer_to_proto,
    changes_from_mask,
    hint_to_proto,
    learning_path_to_proto,
    preferences_to_proto,
    quiz_to_proto,
    reflection_to_proto,
)
from server.agents.quizzes import QuizRequest
from server.agents.service import AgentsService
from server.core.deadlines import deadline_from
from server.core.errors import InvalidArgument
from server.core.names import parse_name, require_id, resolve_user
from server.core.request_context import current_principal

# Time kept back from the client's deadline: an agent stores a whole interaction, or falls back to the offline
# engine, after its model call.
DEADLINE_MARGIN_SECONDS = 0.5


def _video_of(context: common_pb2.LearningContext, field: str = "learning_context") -> tuple[str, str]:
    """(video_id, course_id) of a learning context; the video is required."""
    if not context.video_id:
        raise InvalidArgument.field(f"{field}.video_id", "is required")
    require_id(context.video_id, f"{field}.video_id")
    if context.course_id:
        require_id(context.course_id, f"{field}.course_id")
    return context.video_id, context.course_id


def _range(message: common_pb2.TimeRange) -> tuple[float, float]:
    return message.start_seconds, message.end_seconds


class ProgressRpcs(Protocol):
    """The progress RPCs' transport (`server.progress.stream.ProgressStreams`, handed in by `server.app`)."""

    def watch_video(self, context: aio.ServicerContext[Any, Any]) -> AsyncGenerator[pb.WatchVideoResponse, None]:
        """The stream's messages are read with `context.read()`."""
        ...

    async def publish_video_events(
        self, request: pb.PublishVideoEventsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PublishVideoEventsResponse: ...

    def stream_interventions(
        self, request: pb.StreamInterventionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncGenerator[pb.StreamInterventionsResponse, None]: ...


class AgentServicer(pb_grpc.AgentServiceServicer):
    def __init__(self, preferences: PreferencesService, agents: AgentsService, progress: ProgressRpcs) -> None:
        self._preferences = preferences
        self._agents = agents
        self._progress = progress

    # --- progress: the player's events in, interventions out (server.progress.stream) ---------------------

    async def WatchVideo(
        self, request_iterator: AsyncIterator[pb.WatchVideoRequest], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchVideoResponse]:
        async with contextlib.aclosing(self._progress.watch_video(context)) as responses:
            async for response in responses:
                yield response

    async def PublishVideoEvents(
        self, request: pb.PublishVideoEventsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PublishVideoEventsResponse:
        return await self._progress.publish_video_events(request, context)

    async def StreamInterventions(
        self, request: pb.StreamInterventionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamInterventionsResponse]:
        async with contextlib.aclosing(self._progress.stream_interventions(request, context)) as responses:
            async for response in responses:
                yield response

    # --- the agents ---------------------------------------------------------------------------------------

    async def GetHint(self, request: pb.GetHintRequest, context: aio.ServicerContext[Any, Any]) -> pb.GetHintResponse:
        principal = current_principal()
        learning = request.learning_context
        video_id, course_id = _video_of(learning)
        hint = await self._agents.hint_for(
            principal,
            video_id=video_id,
            course_id=course_id,
            position_seconds=learning.position_seconds,
            selected_range=_range(learning.selected_range) if learning.HasField("selected_range") else None,
            struggle=request.struggle,
            trigger=USER_TRIGGER,
            deadline=deadline_from(context.time_remaining(), margin=DEADLINE_MARGIN_SECONDS),
        )
        return hint_to_proto(hint)

    async def GenerateQuiz(
        self, request: pb.GenerateQuizRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GenerateQuizResponse:
        principal = current_principal()
        if not request.video_id:
            raise InvalidArgument.field("video_id", "is required")
        difficulty = DIFFICULTY_FROM_PROTO.get(request.difficulty)
        if difficulty is None:
            raise InvalidArgument.field("difficulty", "must be DIFFICULTY_EASY, DIFFICULTY_MEDIUM or DIFFICULTY_HARD")
        has_range = request.HasField("range")
        if has_range and request.chunk_ids:
            raise InvalidArgument.field("chunk_ids", "set either range or chunk_ids, not both")
        for index, chunk_id in enumerate(request.chunk_ids):
            require_id(chunk_id, f"chunk_ids[{index}]")
        quiz_request = QuizRequest(
            video_id=request.video_id,
            difficulty=difficulty,
            question_count=request.question_count,
            range=_range(request.range) if has_range else None,
            chunk_ids=tuple(request.chunk_ids),
        )
        quiz = await self._agents.generate_quiz(
            principal, quiz_request, deadline=deadline_from(context.time_remaining(), margin=DEADLINE_MARGIN_SECONDS)
        )
        return pb.GenerateQuizResponse(quiz=quiz_to_proto(quiz), interaction_id=quiz.interaction_id)

    async def SubmitQuizAnswer(
        self, request: pb.SubmitQuizAnswerRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.SubmitQuizAnswerResponse:
        principal = current_principal()
        (quiz_id,) = parse_name(request.quiz, "quizzes/{quiz}", "quiz")
        answer = await self._agents.submit_answer(
            principal,
            quiz_id=quiz_id,
            question_id=request.question_id,
            selected_index=request.selected_index,
            attempt_id=request.attempt_id,
        )
        return answer_to_proto(answer)

    async def GenerateReflection(
        self, request: pb.GenerateReflectionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GenerateReflectionResponse:
        principal = current_principal()
        learning = request.learning_context
        video_id, course_id = _video_of(learning)
        reflection = await self._agents.reflection_for(
            principal,
            video_id=video_id,
            course_id=course_id,
            position_seconds=learning.position_seconds,
            completed_topics=list(request.completed_topics),
            learning_objectives=list(request.learning_objectives),
            deadline=deadline_from(context.time_remaining(), margin=DEADLINE_MARGIN_SECONDS),
        )
        return reflection_to_proto(reflection)

    async def GenerateLearningPath(
        self, request: pb.GenerateLearningPathRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GenerateLearningPathResponse:
        principal = current_principal()
        if not request.course_id:
            raise InvalidArgument.field("course_id", "is required")
        path = await self._agents.learning_path_for(
            principal,
            course_id=request.course_id,
            struggling_concepts=list(request.struggling_concepts),
            completed_concepts=list(request.completed_concepts),
            goals=list(request.goals),
            deadline=deadline_from(context.time_remaining(), margin=DEADLINE_MARGIN_SECONDS),
        )
        return learning_path_to_proto(path)

    async def GetPreferences(
        self, request: pb.GetPreferencesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetPreferencesResponse:
        principal = current_principal()
        (user,) = parse_name(request.name, "users/{user}/preferences", "name")
        user_id = resolve_user(principal, user, "preferences")
        return pb.GetPreferencesResponse(preferences=preferences_to_proto(await self._preferences.get(user_id)))

    async def UpdatePreferences(
        self, request: pb.UpdatePreferencesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.UpdatePreferencesResponse:
        principal = current_principal()
        name = request.preferences.name or "users/me/preferences"
        (user,) = parse_name(name, "users/{user}/preferences", "preferences.name")
        user_id = resolve_user(principal, user, "preferences")
        changes = changes_from_mask(request.preferences, list(request.update_mask.paths))
        stored = await self._preferences.update(principal, user_id, changes)
        return pb.UpdatePreferencesResponse(preferences=preferences_to_proto(stored))
