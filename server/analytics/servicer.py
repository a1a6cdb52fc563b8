"""AnalyticsService transport: proto in, validate, call the domain services, proto out.

RPCs without a method here answer UNIMPLEMENTED through the generated base class.
"""

from __future__ import annotations

from typing import Any

from grpc import aio
from tutorstream.v1 import analytics_service_pb2 as pb
from tutorstream.v1 import analytics_service_pb2_grpc as pb_grpc

from server.analytics.moderation import FlagService
from server.analytics.protos import (
    flag_to_proto,
    insight_to_proto,
    interaction_to_proto,
    place_from_proto,
    usage_report_to_proto,
    user_analytics_to_proto,
    video_analytics_to_proto,
)
from server.analytics.service import AnalyticsService
from server.analytics.usage import UsageService
from server.analytics.video import VideoAnalyticsService
from server.core.names import parse_name, resolve_user
from server.core.request_context import current_principal
from server.experiments.protos import (
    LEVER_FROM_PROTO,
    arms_from_proto,
    experiment_to_proto,
    report_to_proto,
)
from server.experiments.service import ExperimentService
from server.experiments.stats import MIN_SAMPLE

EXPERIMENT_NAME = "courses/{course}/experiments/{experiment}"


class AnalyticsServicer(pb_grpc.AnalyticsServiceServicer):
    def __init__(
        self,
        usage: UsageService,
        analytics: AnalyticsService,
        videos: VideoAnalyticsService,
        experiments: ExperimentService,
        flags: FlagService,
    ) -> None:
        self._usage = usage
        self._analytics = analytics
        self._videos = videos
        self._experiments = experiments
        self._flags = flags

    async def GetUsage(
        self, request: pb.GetUsageRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetUsageResponse:
        principal = current_principal()
        (user,) = parse_name(request.user, "users/{user}", "user")
        user_id = resolve_user(principal, user, "user")
        return usage_report_to_proto(await self._usage.usage(principal, user_id))

    async def RecordInteraction(
        self, request: pb.RecordInteractionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RecordInteractionResponse:
        principal = current_principal()
        row = await self._analytics.record_client_interaction(
            principal, request.trigger, place_from_proto(request.learning_context), dict(request.attributes)
        )
        return pb.RecordInteractionResponse(interaction=interaction_to_proto(row))

    async def RateInteraction(
        self, request: pb.RateInteractionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RateInteractionResponse:
        principal = current_principal()
        (interaction_id,) = parse_name(request.name, "interactions/{interaction}", "name")
        row = await self._analytics.rate(principal, interaction_id, request.rating, request.reason)
        return pb.RateInteractionResponse(interaction=interaction_to_proto(row))

    async def GetUserAnalytics(
        self, request: pb.GetUserAnalyticsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetUserAnalyticsResponse:
        principal = current_principal()
        (user,) = parse_name(request.user, "users/{user}", "user")
        user_id = resolve_user(principal, user, "user")
        return user_analytics_to_proto(await self._analytics.user_analytics(user_id, request.course_id))

    async def GetVideoAnalytics(
        self, request: pb.GetVideoAnalyticsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetVideoAnalyticsResponse:
        principal = current_principal()
        report = await self._videos.video_analytics(principal, request.video_id, request.max_peaks)
        return video_analytics_to_proto(report)

    async def ListInsights(
        self, request: pb.ListInsightsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListInsightsResponse:
        principal = current_principal()
        page = await self._analytics.list_insights(
            principal.user_id, request.course_id, request.show_dismissed, request.page_size, request.page_token
        )
        return pb.ListInsightsResponse(
            insights=[insight_to_proto(row) for row in page.insights], next_page_token=page.next_page_token
        )

    async def GenerateInsights(
        self, request: pb.GenerateInsightsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GenerateInsightsResponse:
        principal = current_principal()
        return pb.GenerateInsightsResponse(job_id=await self._analytics.generate_insights(principal, request.course_id))

    async def DismissInsight(
        self, request: pb.DismissInsightRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DismissInsightResponse:
        principal = current_principal()
        (insight_id,) = parse_name(request.name, "insights/{insight}", "name")
        return pb.DismissInsightResponse(
            insight=insight_to_proto(await self._analytics.dismiss_insight(principal, insight_id))
        )

    async def DeleteUserData(
        self, request: pb.DeleteUserDataRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DeleteUserDataResponse:
        (user,) = parse_name(request.user, "users/{user}", "user")
        return pb.DeleteUserDataResponse(deleted=await self._analytics.delete_user(current_principal(), user))

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.CreateExperimentResponse:
        (course_id,) = parse_name(request.parent, "courses/{course}", "parent")
        experiment = request.experiment
        view = await self._experiments.create(
            current_principal(),
            course_id,
            request.experiment_id,
            display_name=experiment.display_name,
            lever=LEVER_FROM_PROTO.get(experiment.lever, ""),
            arms=arms_from_proto(experiment),
            video_ids=list(experiment.video_ids),
        )
        return pb.CreateExperimentResponse(experiment=experiment_to_proto(view))

    async def GetExperiment(
        self, request: pb.GetExperimentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetExperimentResponse:
        course_id, experiment_id = parse_name(request.name, EXPERIMENT_NAME, "name")
        view = await self._experiments.get(current_principal(), course_id, experiment_id)
        return pb.GetExperimentResponse(experiment=experiment_to_proto(view))

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListExperimentsResponse:
        (course_id,) = parse_name(request.parent, "courses/{course}", "parent")
        views, next_token = await self._experiments.list(
            current_principal(), course_id, size=request.page_size, token=request.page_token
        )
        return pb.ListExperimentsResponse(
            experiments=[experiment_to_proto(view) for view in views], next_page_token=next_token
        )

    async def StartExperiment(
        self, request: pb.StartExperimentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.StartExperimentResponse:
        course_id, experiment_id = parse_name(request.name, EXPERIMENT_NAME, "name")
        view = await self._experiments.start(current_principal(), course_id, experiment_id)
        return pb.StartExperimentResponse(experiment=experiment_to_proto(view))

    async def StopExperiment(
        self, request: pb.StopExperimentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.StopExperimentResponse:
        course_id, experiment_id = parse_name(request.name, EXPERIMENT_NAME, "name")
        view = await self._experiments.stop(current_principal(), course_id, experiment_id)
        return pb.StopExperimentResponse(experiment=experiment_to_proto(view))

    async def GetExperimentReport(
        self, request: pb.GetExperimentReportRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetExperimentReportResponse:
        course_id, experiment_id = parse_name(request.name, EXPERIMENT_NAME, "name")
        report = await self._experiments.report(current_principal(), course_id, experiment_id)
        return report_to_proto(report, MIN_SAMPLE)

    async def ListFlaggedInteractions(
        self, request: pb.ListFlaggedInteractionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListFlaggedInteractionsResponse:
        (course_id,) = parse_name(request.parent, "courses/{course}", "parent")
        views, next_token = await self._flags.list(
            current_principal(), course_id, size=request.page_size, token=request.page_token
        )
        return pb.ListFlaggedInteractionsResponse(
            flagged_interactions=[flag_to_proto(view) for view in views], next_page_token=next_token
        )
