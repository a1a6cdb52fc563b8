"""RPC classes, per-tier limits from Settings (and the environment), and the limits tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import server.limits.models  # noqa: F401  (registers the limits tables on Base.metadata)
from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import normalize_database_url
from server.core.models import Base
from server.limits.gate import LimitsGate
from server.limits.policy import LimitPolicy, RpcClass, StreamKind, rpc_class_for, stream_kind_for
from tests.conftest import make_settings

LIMITS_TABLES = {"token_budgets", "token_reservations", "usage_records"}


@pytest.mark.parametrize(
    ("method", "rpc_class", "stream"),
    [
        ("/tutorstream.v1.ChatService/StreamChat", RpcClass.CHAT, StreamKind.CHAT),
        ("/tutorstream.v1.AgentService/GetHint", RpcClass.HINT, None),
        ("/tutorstream.v1.AgentService/GenerateQuiz", RpcClass.QUIZ, None),
        ("/tutorstream.v1.AgentService/GenerateReflection", RpcClass.AGENT, None),
        ("/tutorstream.v1.AgentService/GenerateLearningPath", RpcClass.AGENT, None),
        ("/tutorstream.v1.AgentService/SubmitQuizAnswer", RpcClass.AGENT, None),
        ("/tutorstream.v1.TranscriptService/IngestTranscript", RpcClass.INGEST, None),
        ("/tutorstream.v1.TranscriptService/TranscribeMedia", RpcClass.INGEST, None),
        ("/tutorstream.v1.TranscriptService/UploadMedia", RpcClass.INGEST, None),
        ("/tutorstream.v1.AgentService/WatchVideo", RpcClass.DEFAULT, StreamKind.WATCH),
        ("/tutorstream.v1.AgentService/StreamInterventions", RpcClass.DEFAULT, StreamKind.WATCH),
        ("/tutorstream.v1.ChatService/ListMessages", RpcClass.DEFAULT, None),
        ("/tutorstream.v1.AnalyticsService/GetUsage", RpcClass.DEFAULT, None),
    ],
)
def test_methods_map_to_classes(method: str, rpc_class: RpcClass, stream: StreamKind | None) -> None:
    assert rpc_class_for(method) is rpc_class
    assert stream_kind_for(method) is stream


def test_defaults_multipliers_and_overrides(tmp_path: Path) -> None:
    policy = LimitPolicy(
        make_settings(
            tmp_path,
            "postgresql://unused/unused",
            tier_limit_overrides={"pro": {"chat": 100, "daily_tokens": 7, "chat_streams": 5}},
        )
    )
    free, pro, service = policy.for_tier("free"), policy.for_tier("pro"), policy.for_tier("service")

    assert {c.value: r.limit for c, r in free.rates.items()} == {
        "chat": 30,
        "hint": 20,
        "quiz": 15,
        "agent": 30,
        "ingest": 10,
        "default": 600,
    }
    assert (free.daily_tokens, free.monthly_tokens) == (100_000, 2_000_000)
    assert free.streams == {StreamKind.CHAT: 3, StreamKind.WATCH: 2}
    assert (pro.rates[RpcClass.CHAT].limit, pro.rates[RpcClass.HINT].limit) == (100, 40)
    assert (pro.daily_tokens, pro.monthly_tokens) == (7, 20_000_000)
    assert pro.streams[StreamKind.CHAT] == 5
    assert service.rates[RpcClass.HINT].limit == 200
    assert policy.for_tier("unheard-of").rates[RpcClass.HINT].limit == 20


def test_tier_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIER_LIMIT_OVERRIDES", '{"free": {"hint": 3}}')
    monkeypatch.setenv("TIER_RATE_MULTIPLIERS", '{"pro": 4}')
    monkeypatch.setenv("RATE_PERIOD_SECONDS", "30")
    policy = LimitPolicy(Settings(_env_file=None))  # type: ignore[call-arg]

    hint = policy.for_tier("free").rates[RpcClass.HINT]
    assert (hint.limit, hint.period_seconds, hint.per_minute) == (3, 30.0, 6)
    assert policy.for_tier("pro").rates[RpcClass.QUIZ].limit == 60


async def test_a_limit_of_zero_switches_it_off(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, "postgresql://unused/unused", tier_limit_overrides={"free": {"hint": 0, "chat_streams": 0}}
    )
    gate = LimitsGate(LimitPolicy(settings))
    ada = Principal("ada", Role.STUDENT, Tier.FREE)
    for _ in range(100):
        async with gate.admit(ada, "/tutorstream.v1.AgentService/GetHint"):
            pass
    async with (
        gate.admit(ada, "/tutorstream.v1.ChatService/StreamChat"),
        gate.admit(ada, "/tutorstream.v1.ChatService/StreamChat"),
        gate.admit(ada, "/tutorstream.v1.ChatService/StreamChat"),
        gate.admit(ada, "/tutorstream.v1.ChatService/StreamChat"),
    ):
        pass
    statuses = {status.rpc_class: status for status in await gate.rate_status("ada", "free")}
    assert statuses["hint"].limit_per_minute == 0


def test_models_match_the_migration(fresh_database_url: str) -> None:
    engine = create_engine(normalize_database_url(fresh_database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    mine = [diff for diff in differences if any(table in repr(diff) for table in LIMITS_TABLES)]
    assert mine == []
