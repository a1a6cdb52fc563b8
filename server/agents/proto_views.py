"""Agent results as protos (the servicer's output side)."""

from __future__ import annotations

from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.agents.domain import (
    AnswerResult,
    LearningPathResult,
    QuizResult,
    ReflectionResult,
)
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
