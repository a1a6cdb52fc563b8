"""Analytics values to and from AnalyticsService messages (experiments map theirs in experiments/protos.py)."""

from __future__ import annotations

from typing import Any

from tutorstream.v1 import analytics_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.analytics.domain import (
    AgentCount,
    ConfusionSegment,
    FlagView,
    InsightView,
    InteractionView,
    Place,
    UsageReport,
    UserAnalytics,
    VideoAnalytics,
)
from server.analytics.video import HELP_OUTCOME_DESCRIPTION
from server.core.protos import timestamp, usage_to_proto
from server.core.values import Usage
from server.experiments.protos import arm_outcome_to_proto, comparison_to_proto
from server.experiments.stats import Comparison

AGENT_TYPES = {
    "chat": pb.AGENT_TYPE_CHAT,
    "hint": pb.AGENT_TYPE_HINT,
    "quiz": pb.AGENT_TYPE_QUIZ,
    "reflection": pb.AGENT_TYPE_REFLECTION,
    "learning_path": pb.AGENT_TYPE_LEARNING_PATH,
    "intervention": pb.AGENT_TYPE_INTERVENTION,
    "client": pb.AGENT_TYPE_CLIENT,
}
INSIGHT_KINDS = {
    "struggling_concept": pb.INSIGHT_KIND_STRUGGLING_CONCEPT,
    "strong_area": pb.INSIGHT_KIND_STRONG_AREA,
    "recommended_intervention": pb.INSIGHT_KIND_RECOMMENDED_INTERVENTION,
}
INTERVENTION_TYPES = {
    "hint": common_pb2.INTERVENTION_TYPE_HINT,
    "quiz": common_pb2.INTERVENTION_TYPE_QUIZ,
    "review": common_pb2.INTERVENTION_TYPE_REVIEW,
    "break": common_pb2.INTERVENTION_TYPE_BREAK,
}


def place_from_proto(context: common_pb2.LearningContext) -> Place:
    return Place(context.course_id, context.video_id, context.position_seconds)


def interaction_to_proto(view: InteractionView) -> pb.Interaction:
    return pb.Interaction(
        name=f"interactions/{view.interaction_id}",
        interaction_id=view.interaction_id,
        agent_type=AGENT_TYPES.get(view.agent_type, pb.AGENT_TYPE_UNSPECIFIED),
        trigger=view.trigger,
        course_id=view.place.course_id,
        video_id=view.place.video_id,
        position_seconds=view.place.position_seconds,
        model=view.model,
        usage=usage_to_proto(view.usage),
        latency_ms=view.latency_ms,
        cached=view.cached,
        confidence=view.confidence or 0.0,
        rating=view.rating or 0,
        rating_reason=view.rating_reason,
        create_time=timestamp(view.create_time),
    )


def agent_stats_to_proto(agent: AgentCount) -> pb.AgentStats:
    return pb.AgentStats(
        agent_type=AGENT_TYPES.get(agent.agent_type, pb.AGENT_TYPE_UNSPECIFIED),
        count=agent.count,
        rating_count=agent.rating_count,
        average_rating=agent.average_rating,
    )


def user_analytics_to_proto(report: UserAnalytics) -> pb.GetUserAnalyticsResponse:
    return pb.GetUserAnalyticsResponse(
        agents=[agent_stats_to_proto(agent) for agent in report.agents],
        watch_seconds=report.watch_seconds,
        quiz_answers=report.quiz_answers,
        quiz_accuracy=report.quiz_accuracy,
        mastery=[
            pb.ConceptMasteryStat(concept=m.concept, probability=m.probability, attempts=m.attempts)
            for m in report.mastery
        ],
        usage=usage_to_proto(Usage(report.prompt_tokens, report.completion_tokens, report.cost_usd)),
        interventions_received=report.interventions_received,
        interventions_accepted=report.interventions_accepted,
    )


def video_analytics_to_proto(report: VideoAnalytics) -> pb.GetVideoAnalyticsResponse:
    return pb.GetVideoAnalyticsResponse(
        video_id=report.video_id,
        viewers=report.viewers,
        confusion_peaks=[
            pb.ConfusionPeak(**_segment_fields(peak), transcript_text=peak.transcript_text) for peak in report.peaks
        ],
        interventions=[
            pb.InterventionStat(
                type=INTERVENTION_TYPES[stat.kind],
                delivered=stat.delivered,
                accepted=stat.accepted,
                dismissed=stat.dismissed,
                acceptance_rate=stat.acceptance_rate,
            )
            for stat in report.interventions
        ],
        help_outcome=_help_outcome(report.help_outcome),
        segments=[pb.ConfusionSegment(**_segment_fields(segment)) for segment in report.segments],
        agents=[agent_stats_to_proto(agent) for agent in report.agents],
        ratings=[pb.RatingCount(rating=star, count=count) for star, count in enumerate(report.ratings, start=1)],
    )


def _segment_fields(segment: ConfusionSegment) -> dict[str, Any]:
    """The fields a confusion segment and a confusion peak share."""
    return {
        "range": common_pb2.TimeRange(start_seconds=segment.start_seconds, end_seconds=segment.end_seconds),
        "score": segment.score,
        "rewatches": segment.rewatches,
        "pauses": segment.pauses,
        "hints": segment.hints,
        "wrong_answers": segment.wrong_answers,
        "students": segment.students,
    }


def _help_outcome(comparison: Comparison) -> pb.HelpOutcome:
    return pb.HelpOutcome(
        description=HELP_OUTCOME_DESCRIPTION,
        groups=[
            arm_outcome_to_proto("did_not_ask", comparison.control),
            arm_outcome_to_proto("asked_for_help", comparison.treatment),
        ],
        comparison=comparison_to_proto("asked_for_help", "did_not_ask", comparison),
    )


def _citation(data: dict[str, Any]) -> common_pb2.Citation:
    return common_pb2.Citation(
        video_id=str(data.get("video_id", "")),
        start_seconds=float(data.get("start_seconds", 0.0)),
        end_seconds=float(data.get("end_seconds", 0.0)),
        chunk_id=str(data.get("chunk_id", "")),
        quoted_text=str(data.get("quoted_text", "")),
    )


def insight_to_proto(view: InsightView) -> pb.Insight:
    return pb.Insight(
        name=f"insights/{view.insight_id}",
        insight_id=view.insight_id,
        kind=INSIGHT_KINDS.get(view.kind, pb.INSIGHT_KIND_UNSPECIFIED),
        title=view.title,
        detail=view.detail,
        concept=view.concept,
        course_id=view.course_id,
        citations=[_citation(citation) for citation in view.citations],
        create_time=timestamp(view.create_time),
        dismiss_time=timestamp(view.dismiss_time),
    )


WINDOW_TO_PROTO = {"day": pb.USAGE_WINDOW_DAY, "month": pb.USAGE_WINDOW_MONTH}


def usage_report_to_proto(report: UsageReport) -> pb.GetUsageResponse:
    return pb.GetUsageResponse(
        tier=report.tier,
        budgets=[
            pb.BudgetStatus(
                window=WINDOW_TO_PROTO[window.period],
                tokens_used=window.tokens_used + window.tokens_reserved,
                tokens_limit=window.tokens_limit,
                tokens_remaining=window.tokens_remaining,
                cost_usd=window.cost_usd,
                reset_time=timestamp(window.reset_time),
            )
            for window in report.budgets
        ],
        rate_limits=[
            pb.RateLimitStatus(
                rpc_class=rate.rpc_class,
                limit_per_minute=rate.limit_per_minute,
                remaining=rate.remaining,
                reset_time=timestamp(rate.reset_time),
            )
            for rate in report.rate_limits
        ],
        by_model=[
            pb.ModelUsage(
                model=row.model,
                operation=row.operation,
                usage=common_pb2.TokenUsage(
                    prompt_tokens=row.prompt_tokens,
                    completion_tokens=row.completion_tokens,
                    total_tokens=row.total_tokens,
                    cost_usd=row.cost_usd,
                ),
                calls=row.calls,
            )
            for row in report.by_model
        ],
    )


def flag_to_proto(view: FlagView) -> pb.FlaggedInteraction:
    return pb.FlaggedInteraction(
        name=f"courses/{view.course_id}/flaggedInteractions/{view.flag_id}",
        user_id=view.user_id,
        video_id=view.video_id,
        surface=view.surface,
        message=view.message,
        category=view.category,
        score=view.score,
        detector=view.detector,
        excerpt=view.excerpt,
        create_time=timestamp(view.create_time),
    )
