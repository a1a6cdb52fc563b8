"""AgentService transport: proto in, validate, call the domain services, proto out."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2
from grpc import aio
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import agent_service_pb2_grpc as pb_grpc
from tutorstream.v1 import common_pb2

from server.agents.preferences import UPDATABLE_FIELDS, PreferencesService, PreferenceValues
from server.core.errors import FieldViolation, InvalidArgument
from server.core.names import parse_name, resolve_user
from server.core.request_context import current_principal

PERSONALITY_TO_PROTO = {
    "friendly": common_pb2.PERSONALITY_FRIENDLY,
    "professional": common_pb2.PERSONALITY_PROFESSIONAL,
    "peer": common_pb2.PERSONALITY_PEER,
}
LENGTH_TO_PROTO = {
    "short": common_pb2.RESPONSE_LENGTH_SHORT,
    "medium": common_pb2.RESPONSE_LENGTH_MEDIUM,
    "detailed": common_pb2.RESPONSE_LENGTH_DETAILED,
}
QUIZ_FREQUENCY_TO_PROTO = {
    "off": pb.QUIZ_FREQUENCY_OFF,
    "low": pb.QUIZ_FREQUENCY_LOW,
    "medium": pb.QUIZ_FREQUENCY_MEDIUM,
    "high": pb.QUIZ_FREQUENCY_HIGH,
}
_ENUM_FIELDS: dict[str, tuple[Any, Any]] = {
    "personality": (PERSONALITY_TO_PROTO, common_pb2.Personality),
    "response_length": (LENGTH_TO_PROTO, common_pb2.ResponseLength),
    "quiz_frequency": (QUIZ_FREQUENCY_TO_PROTO, pb.QuizFrequency),
}


def timestamp(value: Any) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def preferences_to_proto(values: PreferenceValues) -> pb.Preferences:
    message = pb.Preferences(
        name=f"users/{values.user_id}/preferences",
        personality=PERSONALITY_TO_PROTO[values.personality],
        response_length=LENGTH_TO_PROTO[values.response_length],
        auto_hints_enabled=values.auto_hints_enabled,
        quiz_frequency=QUIZ_FREQUENCY_TO_PROTO[values.quiz_frequency],
        reflection_prompts_enabled=values.reflection_prompts_enabled,
    )
    stamp = timestamp(values.update_time)
    if stamp is not None:
        message.update_time.CopyFrom(stamp)
    return message


def _changes_from_mask(preferences: pb.Preferences, paths: list[str]) -> dict[str, Any]:
    if not paths:
        raise InvalidArgument.field("update_mask", "is required: name the fields to update, or `*`")
    if paths == ["*"]:
        paths = list(UPDATABLE_FIELDS)
    violations: list[FieldViolation] = []
    changes: dict[str, Any] = {}
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            violations.append(
                FieldViolation(
                    "update_mask.paths",
                    f"`{path}` is not updatable; allowed: {', '.join(UPDATABLE_FIELDS)}, *",
                )
            )
            continue
        value = getattr(preferences, path)
        if path in _ENUM_FIELDS:
            to_proto, enum_type = _ENUM_FIELDS[path]
            from_proto = {number: word for word, number in to_proto.items()}
            if value not in from_proto:
                allowed = ", ".join(enum_type.Name(n) for n in from_proto)
                shown = enum_type.Name(value) if value in enum_type.values() else str(value)
                violations.append(
                    FieldViolation(f"preferences.{path}", f"{shown} is not allowed; use one of {allowed}")
                )
                continue
            changes[path] = from_proto[value]
        else:
            changes[path] = bool(value)
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations=violations
        )
    return changes


class AgentServicer(pb_grpc.AgentServiceServicer):
    def __init__(self, preferences: PreferencesService) -> None:
        self._preferences = preferences

    async def GetPreferences(
        self, request: pb.GetPreferencesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetPreferencesResponse:
        principal = current_principal()
        (user,) = parse_name(request.name, "users/{user}/preferences", "name")
        user_id = resolve_user(principal, user, "preferences")
        return pb.GetPreferencesResponse(
            preferences=preferences_to_proto(await self._preferences.get(user_id))
        )

    async def UpdatePreferences(
        self, request: pb.UpdatePreferencesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.UpdatePreferencesResponse:
        principal = current_principal()
        name = request.preferences.name or "users/me/preferences"
        (user,) = parse_name(name, "users/{user}/preferences", "preferences.name")
        user_id = resolve_user(principal, user, "preferences")
        changes = _changes_from_mask(request.preferences, list(request.update_mask.paths))
        stored = await self._preferences.update(principal, user_id, changes)
        return pb.UpdatePreferencesResponse(preferences=preferences_to_proto(stored))
