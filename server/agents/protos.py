"""Agent values to and from AgentService messages: results, preferences and their update masks."""

from __future__ import annotations

from typing import Any

from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.agents.domain import (
    AnswerResult,
    HintResult,
    LearningPathResult,
    QuizResult,
    ReflectionResult,
)
from server.agents.preferences import UPDATABLE_FIELDS, PreferenceValues
from server.core.errors import FieldViolation, InvalidArgument
from server.core.protos import citation_to_proto, timestamp, usage_to_proto

DIFFICULTY_FROM_PROTO = {
    common_pb2.DIFFICULTY_UNSPECIFIED: "medium",
    common_pb2.DIFFICULTY_EASY: "easy",
    common_pb2.DIFFICULTY_MEDIUM: "medium",
    common_pb2.DIFFICULTY_HARD: "hard",
}
DIFFICULTY_TO_PROTO = {
    "easy": common_pb2.DIFFICULTY_EASY,
    "medium": common_pb2.DIFFICULTY_MEDIUM,
    "hard": common_pb2.DIFFICULTY_HARD,
}


def quiz_to_proto(quiz: QuizResult) -> pb.Quiz:
    """The quiz as a student may see it: the answer key never leaves the server here."""
    message = pb.Quiz(
        name=f"quizzes/{quiz.quiz_id}",
        quiz_id=quiz.quiz_id,
        video_id=quiz.video_id,
        range=common_pb2.TimeRange(start_seconds=quiz.start_seconds, end_seconds=quiz.end_seconds),
        difficulty=DIFFICULTY_TO_PROTO[quiz.difficulty],
        questions=[
            pb.QuizQuestion(
                question_id=question.question_id,
                stem=question.stem,
                options=list(question.options),
                concepts=list(question.concepts),
            )
            for question in quiz.questions
        ],
        model=quiz.model,
        cached=quiz.cached,
        usage=usage_to_proto(quiz.usage),
    )
    for field, value in (("create_time", quiz.create_time), ("expire_time", quiz.expire_time)):
        stamp = timestamp(value)
        if stamp is not None:
            getattr(message, field).CopyFrom(stamp)
    return message


def answer_to_proto(answer: AnswerResult) -> pb.SubmitQuizAnswerResponse:
    mastery = []
    for entry in answer.mastery:
        item = pb.ConceptMastery(
            concept=entry.concept, probability=entry.probability, attempts=entry.attempts, correct=entry.correct
        )
        stamp = timestamp(entry.update_time)
        if stamp is not None:
            item.update_time.CopyFrom(stamp)
        mastery.append(item)
    return pb.SubmitQuizAnswerResponse(
        correct=answer.correct,
        correct_index=answer.correct_index,
        explanation=answer.explanation,
        citation=citation_to_proto(answer.citation),
        mastery=mastery,
        attempt_id=answer.attempt_id,
    )


def reflection_to_proto(reflection: ReflectionResult) -> pb.GenerateReflectionResponse:
    return pb.GenerateReflectionResponse(
        prompt=reflection.prompt,
        guiding_questions=list(reflection.guiding_questions),
        expected_length_words=reflection.expected_length_words,
        topics=list(reflection.topics),
        model=reflection.model,
        usage=usage_to_proto(reflection.usage),
        interaction_id=reflection.interaction_id,
        citations=[citation_to_proto(citation) for citation in reflection.citations],
    )


def learning_path_to_proto(path: LearningPathResult) -> pb.GenerateLearningPathResponse:
    return pb.GenerateLearningPathResponse(
        detected_issues=list(path.detected_issues),
        recommendations=[
            pb.RecommendedContent(
                video_id=item.video_id,
                title=item.title,
                range=common_pb2.TimeRange(start_seconds=item.start_seconds, end_seconds=item.end_seconds),
                why=item.why,
                difficulty=DIFFICULTY_TO_PROTO[item.difficulty],
                estimated_minutes=item.estimated_minutes,
                priority=item.priority,
                concept=item.concept,
            )
            for item in path.recommendations
        ],
        next_steps=list(path.next_steps),
        model=path.model,
        usage=usage_to_proto(path.usage),
        interaction_id=path.interaction_id,
    )


def hint_to_proto(hint: HintResult) -> pb.GetHintResponse:
    return pb.GetHintResponse(
        hint=hint.text,
        citation=citation_to_proto(hint.citation),
        confidence=hint.confidence,
        model=hint.model,
        usage=usage_to_proto(hint.usage),
        interaction_id=hint.interaction_id,
        level=hint.level,
    )


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


def preferences_to_proto(values: PreferenceValues) -> pb.Preferences:
    message = pb.Preferences(
        name=f"users/{values.user_id}/preferences",
        personality=PERSONALITY_TO_PROTO[values.personality],
        response_length=LENGTH_TO_PROTO[values.response_length],
        auto_hints_enabled=values.auto_hints_enabled,
        quiz_frequency=QUIZ_FREQUENCY_TO_PROTO[values.quiz_frequency],
        reflection_prompts_enabled=values.reflection_prompts_enabled,
        no_spoilers=values.no_spoilers,
    )
    stamp = timestamp(values.update_time)
    if stamp is not None:
        message.update_time.CopyFrom(stamp)
    return message


def changes_from_mask(preferences: pb.Preferences, paths: list[str]) -> dict[str, Any]:
    """The fields an UpdatePreferences request changes, as domain values; every path and enum value checked."""
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
        raise InvalidArgument("; ".join(f"{v.field}: {v.description}" for v in violations), violations=violations)
    return changes
