"""Experiments between the domain and AnalyticsService messages."""

from __future__ import annotations

from tutorstream.v1 import analytics_service_pb2 as pb

from server.core.protos import timestamp
from server.experiments.assignment import Lever
from server.experiments.domain import Arm, ExperimentView, ReportView
from server.experiments.stats import ArmEstimate, Comparison

LEVER_TO_PROTO = {
    Lever.INTERVENTIONS: pb.EXPERIMENT_LEVER_INTERVENTIONS,
    Lever.HINT_LADDER: pb.EXPERIMENT_LEVER_HINT_LADDER,
    Lever.NO_SPOILERS: pb.EXPERIMENT_LEVER_NO_SPOILERS,
}
LEVER_FROM_PROTO = {proto: lever.value for lever, proto in LEVER_TO_PROTO.items()}
STATE_TO_PROTO = {
    "draft": pb.EXPERIMENT_STATE_DRAFT,
    "running": pb.EXPERIMENT_STATE_RUNNING,
    "stopped": pb.EXPERIMENT_STATE_STOPPED,
}
KIND_TO_PROTO = {"proportion": pb.OUTCOME_KIND_PROPORTION, "mean": pb.OUTCOME_KIND_MEAN}


def arms_from_proto(experiment: pb.Experiment) -> list[Arm]:
    return [Arm(arm.name, arm.weight) for arm in experiment.arms]


def experiment_to_proto(view: ExperimentView) -> pb.Experiment:
    message = pb.Experiment(
        name=f"courses/{view.course_id}/experiments/{view.experiment_id}",
        display_name=view.display_name,
        lever=LEVER_TO_PROTO[view.lever],
        arms=[pb.ExperimentArm(name=arm.name, weight=arm.weight) for arm in view.arms],
        video_ids=list(view.video_ids),
        state=STATE_TO_PROTO[view.state],
        created_by=view.created_by,
        create_time=timestamp(view.create_time),
        exposures=view.exposures,
    )
    if view.start_time is not None:
        message.start_time.CopyFrom(timestamp(view.start_time))
    if view.stop_time is not None:
        message.stop_time.CopyFrom(timestamp(view.stop_time))
    return message


def arm_outcome_to_proto(arm: str, estimate: ArmEstimate) -> pb.ArmOutcome:
    return pb.ArmOutcome(
        arm=arm, n=estimate.n, estimate=estimate.estimate, ci_low=estimate.ci_low, ci_high=estimate.ci_high
    )


def comparison_to_proto(arm: str, control_arm: str, comparison: Comparison) -> pb.ArmComparison:
    return pb.ArmComparison(
        arm=arm,
        control_arm=control_arm,
        difference=comparison.difference,
        ci_low=comparison.ci_low,
        ci_high=comparison.ci_high,
        p_value=comparison.p_value,
        minimum_detectable_effect=comparison.minimum_detectable_effect,
        enough_data=comparison.enough_data,
        significant=comparison.significant,
    )


def report_to_proto(report: ReportView, minimum_sample: int) -> pb.GetExperimentReportResponse:
    control = report.experiment.arms[0].name
    return pb.GetExperimentReportResponse(
        experiment=experiment_to_proto(report.experiment),
        outcomes=[
            pb.OutcomeReport(
                metric=outcome.metric,
                description=outcome.description,
                kind=KIND_TO_PROTO[outcome.kind],
                arms=[arm_outcome_to_proto(arm, estimate) for arm, estimate in outcome.arms],
                comparisons=[comparison_to_proto(arm, control, comparison) for arm, comparison in outcome.comparisons],
            )
            for outcome in report.outcomes
        ],
        minimum_sample=minimum_sample,
        notes=list(report.notes),
    )
