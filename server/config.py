"""All configuration in one pydantic-settings object, read from the environment (and `.env`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.60},
    "gpt-4o": {"input_per_million": 2.50, "output_per_million": 10.00},
    "gpt-4.1-mini": {"input_per_million": 0.40, "output_per_million": 1.60},
    "text-embedding-3-small": {"input_per_million": 0.02, "output_per_million": 0.0},
    "offline-extractive": {"input_per_million": 0.0, "output_per_million": 0.0},
}


class ConfigurationError(Exception):
    """Settings that cannot work together or files they name that cannot be used; the message says which."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_nested_delimiter="__")

    # --- network -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gRPC server binds to.")
    port: int = Field(50051, description="gRPC port (0 picks a free port).")
    grace_seconds: float = Field(10.0, description="Drain time for in-flight RPCs on shutdown.")
    shutdown_notice_seconds: float = Field(
        1.0, description="Time health reports NOT_SERVING before the server stops accepting RPCs."
    )
    max_receive_message_bytes: int = Field(8 * 1024 * 1024, description="Largest accepted request message.")
    max_send_message_bytes: int = Field(16 * 1024 * 1024, description="Largest response message.")
    metrics_port: int = Field(0, description="Prometheus metrics port; 0 disables the endpoint.")
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain of the gRPC port; with TLS_KEY_FILE the port speaks TLS only."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of TLS_CERT_FILE.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA certificates: every client must present a certificate they issued (mutual TLS). "
        "Unset: no client certificate asked for.",
    )
    allow_plaintext_non_loopback: bool = Field(
        False,
        description="Serve without TLS on an address other than loopback (a private network behind a "
        "TLS-terminating proxy). Without it such a HOST needs TLS_CERT_FILE.",
    )

    # --- storage -------------------------------------------------------------------------------
    data_dir: Path = Field(Path(".data"), description="Embedded Postgres, generated secrets, models.")
    database_url: str | None = Field(
        None, description="External PostgreSQL with pgvector (postgresql://...). Unset: embedded server."
    )
    migrate_on_start: bool = Field(True, description="Run Alembic migrations when `serve` starts.")
    db_pool_size: int = Field(10, description="SQLAlchemy pool size.")
    redis_url: str | None = Field(None, description="Redis for shared limits and cache. Unset: in-process.")

    # --- auth ----------------------------------------------------------------------------------
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 secret. Unset: generated once into DATA_DIR/jwt-secret."
    )
    jwt_public_key_file: Path | None = Field(None, description="PEM public key: switches to RS256.")
    jwt_jwks_file: Path | None = Field(None, description="JWKS file with RS256 keys (kid-matched).")
    jwt_issuer: str = Field("tutorstream", description="Required `iss` claim.")
    jwt_audience: str = Field("tutorstream-api", description="Required `aud` claim.")
    jwt_leeway_seconds: int = Field(30, description="Clock skew allowed on exp/nbf.")

    # --- LLM -----------------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(None, description="Enables the OpenAI-compatible provider.")
    openai_base_url: str | None = Field(None, description="Any OpenAI-compatible endpoint.")
    openai_organization: str | None = Field(None, description="OpenAI organization id.")
    chat_model: str = Field("gpt-4o-mini", description="Model for chat and agents.")
    budget_fallback_model: str = Field(
        "",
        description="A cheaper model that answers (chat and agents) once a student's token budget runs low "
        "(empty: always CHAT_MODEL).",
    )
    budget_fallback_below: float = Field(
        0.2,
        ge=0,
        le=1,
        description="With BUDGET_FALLBACK_MODEL set: the share of the daily or monthly token budget left below "
        "which it answers.",
    )
    llm_max_retries: int = Field(2, description="Retries on 429/5xx while the deadline allows.")
    llm_timeout_seconds: float = Field(60.0, description="Upper bound for one upstream call.")
    breaker_failure_threshold: int = Field(5, description="Consecutive failures that open the breaker.")
    breaker_cooldown_seconds: float = Field(30.0, description="Open-breaker time before a trial call.")
    history_token_budget: int = Field(3000, description="Tokens of history kept in a chat prompt.")
    spoiler_lookahead_seconds: float = Field(
        30.0, ge=0, description="With no spoilers on, how far past the playhead the tutor may still quote."
    )
    response_cache_ttl_seconds: int = Field(3600, description="Identical-request replay window.")
    moderation_enabled: bool = Field(True, description="Moderate what students write to the chat.")
    moderation_online: bool = Field(
        True, description="With a configured key, moderate through the endpoint (else the offline heuristic)."
    )
    moderation_model: str = Field("omni-moderation-latest", description="Moderation endpoint model.")
    moderate_streamed_answers: bool = Field(
        True,
        description="Release a model's streamed chat answer a moderated sentence at a time (off: relay tokens as "
        "they arrive, for a lower time to first token).",
    )
    moderation_profanity_threshold: float = Field(
        0.9, gt=0, le=1, description="Offline heuristic: profanity score from which a message is flagged."
    )
    preferences_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="How long a replica keeps a user's preferences in memory (0: read them on every call). "
        "Updates and deletions evict them at once, on every replica through Redis when REDIS_URL is set.",
    )
    model_prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES), description="USD per 1M tokens by model."
    )

    # --- embeddings ----------------------------------------------------------------------------
    embedding_provider: str = Field(
        "auto", description="auto | local | openai (auto: openai when a key is set, else local)."
    )
    openai_embedding_model: str = Field("text-embedding-3-small", description="OpenAI embedding model.")
    local_embedding_model: str = Field("all-MiniLM-L6-v2", description="Local sentence-transformers model.")

    # --- transcripts ---------------------------------------------------------------------------
    max_transcript_bytes: int = Field(5 * 1024 * 1024, description="Largest transcript accepted.")
    run_workers_in_process: bool = Field(True, description="Run background job workers inside `serve`.")
    seed_demo_on_start: bool = Field(False, description="Ingest the demo course when the DB is empty.")
    ingest_watch_poll_seconds: float = Field(
        0.25, gt=0, description="How often WatchIngestJob re-reads the job for changes."
    )

    # --- speech to text (server/asr) ----------------------------------------------------------
    asr_provider: str = Field(
        "local", description="local (faster-whisper, offline) | openai (OpenAI-compatible audio transcription)."
    )
    asr_model_dir: Path | None = Field(
        None,
        description="CTranslate2 Whisper model directory. Unset: the packaged Whisper base, assembled once "
        "into DATA_DIR/models/whisper-base (an empty directory gets it assembled there).",
    )
    asr_compute_type: str = Field("int8", description="CTranslate2 compute type of the local model.")
    asr_cpu_threads: int = Field(0, ge=0, description="Threads of the local model (0: min(4, cores)).")
    asr_beam_size: int = Field(1, ge=1, le=10, description="Beam size of the local model (1: greedy, fastest).")
    asr_vad_filter: bool = Field(True, description="Skip non-speech with the Silero VAD bundled in faster-whisper.")
    asr_max_concurrent: int = Field(1, ge=1, description="Local transcriptions running at once per process.")
    asr_window_seconds: float = Field(
        30.0, ge=10.0, le=600.0, description="Audio per recognition window (local: at most 30)."
    )
    asr_openai_model: str = Field("whisper-1", description="Model for OpenAI audio transcription (verbose_json).")
    asr_openai_base_url: str | None = Field(
        None, description="Base URL for audio transcription. Unset: OPENAI_BASE_URL (key: OPENAI_API_KEY)."
    )
    asr_allowed_url_origins: list[str] = Field(
        default_factory=list,
        description="Origins (`https://host[:port]`) TranscribeMedia may fetch from; empty: no URLs.",
    )
    asr_media_dir: Path | None = Field(
        None, description="Directory TranscribeMedia may read `media_path` from; unset: no paths."
    )
    asr_upload_dir: Path | None = Field(
        None,
        description="Where UploadMedia spools media until its job ends (shared with workers). Unset: DATA_DIR/uploads.",
    )
    asr_max_media_bytes: int = Field(1024**3, ge=1, description="Largest media accepted (upload, URL or path).")
    asr_max_media_seconds: float = Field(4 * 3600.0, gt=0, description="Longest media accepted, in seconds.")
    asr_fetch_timeout_seconds: float = Field(600.0, gt=0, description="Time allowed to download media from a URL.")

    # --- background jobs (procrastinate) --------------------------------------------------------
    job_concurrency: int = Field(2, ge=1, description="Jobs one worker runs at the same time.")
    job_pool_size: int = Field(4, ge=2, description="Connections of the job queue's pool per process.")
    job_poll_seconds: float = Field(5.0, gt=0, description="Queue poll interval (LISTEN/NOTIFY wakes earlier).")
    job_heartbeat_seconds: float = Field(5.0, gt=0, description="Worker heartbeat interval.")
    job_stalled_seconds: float = Field(
        30.0, gt=0, description="Heartbeat age after which a worker's running jobs are retried elsewhere."
    )
    job_sweep_seconds: float = Field(10.0, gt=0, description="How often workers look for stalled or lost jobs.")
    job_shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="On worker shutdown, time running jobs get before being aborted and requeued."
    )
    job_max_attempts: int = Field(5, ge=1, description="Attempts per job (crashes and aborts count).")

    # --- limits --------------------------------------------------------------------------------
    rate_chat_per_minute: int = Field(30, description="Chat turns per user per minute (free tier).")
    rate_hint_per_minute: int = Field(20, description="Hints per user per minute.")
    rate_quiz_per_minute: int = Field(15, description="Quizzes per user per minute.")
    rate_agent_per_minute: int = Field(30, description="Other agent calls per user per minute.")
    rate_ingest_per_minute: int = Field(10, description="Ingest calls per user per minute.")
    daily_token_budget: int = Field(100_000, description="Tokens per user per day (free tier).")
    monthly_token_budget: int = Field(2_000_000, description="Tokens per user per month (free tier).")
    max_chat_streams_per_user: int = Field(3, description="Concurrent StreamChat calls per user.")
    max_watch_streams_per_user: int = Field(2, description="Concurrent progress streams per user.")
    rate_default_per_minute: int = Field(
        600, description="Every other authenticated RPC (reads, preferences, events) per user per minute."
    )
    rate_period_seconds: float = Field(
        60.0, gt=0, description="Window the rate_*_per_minute limits refill over (shorten only for tests)."
    )
    tier_rate_multipliers: dict[str, float] = Field(
        default_factory=lambda: {"free": 1.0, "pro": 2.0, "instructor": 2.0, "service": 10.0},
        description="Rate limits per tier = rate_*_per_minute x multiplier (missing tier: 1).",
    )
    tier_budget_multipliers: dict[str, float] = Field(
        default_factory=lambda: {"free": 1.0, "pro": 10.0, "instructor": 10.0, "service": 50.0},
        description="Token budgets per tier = daily/monthly_token_budget x multiplier (missing tier: 1).",
    )
    tier_limit_overrides: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Exact limits per tier, winning over multipliers: keys chat, hint, quiz, agent, ingest, "
        "default, daily_tokens, monthly_tokens, chat_streams, watch_streams.",
    )
    stream_lease_seconds: float = Field(
        30.0, gt=0, description="Stream slot lease, renewed while the stream lives (a dead replica's expire)."
    )
    budget_reservation_ttl_seconds: float = Field(
        600.0, gt=0, description="A token reservation never committed or released is charged after this."
    )
    redis_timeout_seconds: float = Field(0.5, gt=0, description="Redis connect/read timeout for limits.")
    redis_probe_seconds: float = Field(1.0, gt=0, description="Redis reconnect probe interval during an outage.")

    # --- agents --------------------------------------------------------------------------------
    quiz_cache_ttl_seconds: int = Field(
        7 * 24 * 3600, gt=0, description="How long a generated quiz is served to every student who asks for it."
    )

    # --- video progress and interventions (server/progress; sources in server/progress/engine.py) ----
    watch_rewatch_min_seeks: int = Field(
        2, ge=1, description="Backward seeks over the same stretch that mark re-watching (Kim et al. 2014)."
    )
    watch_rewatch_span_seconds: float = Field(
        30.0, gt=0, description="Seeks landing within this many seconds of each other re-watch the same stretch."
    )
    watch_rewatch_window_seconds: float = Field(
        300.0, gt=0, description="Backward seeks count towards re-watching for this long (event time)."
    )
    watch_pause_min_count: int = Field(
        3, ge=1, description="Pauses in one region that mark difficulty (Li et al. 2015)."
    )
    watch_pause_span_seconds: float = Field(30.0, gt=0, description="Width of a pause region in video seconds.")
    watch_pause_window_seconds: float = Field(
        300.0, gt=0, description="Pauses count towards a region for this long (event time)."
    )
    watch_break_after_seconds: float = Field(
        1500.0, gt=0, description="Continuous watching before a BREAK is suggested (Guo et al. 2014)."
    )
    watch_break_gap_seconds: float = Field(
        300.0, gt=0, description="A gap without playback at least this long counts as a break."
    )
    watch_slow_rate_threshold: float = Field(
        0.9, gt=0, description="Playback rate at or below which playback counts as slowed (Li et al. 2015)."
    )
    watch_quiz_interval_seconds: dict[str, float] = Field(
        default_factory=lambda: {"low": 600.0, "medium": 300.0, "high": 180.0},
        description="Seconds of new content between QUIZ checkpoints, by the quiz_frequency preference.",
    )
    watch_quiz_questions: int = Field(3, ge=1, le=10, description="Questions in a checkpoint quiz.")
    watch_cooldown_seconds: float = Field(120.0, ge=0, description="Minimum event time between interventions.")
    watch_inactive_after_seconds: float = Field(
        120.0, gt=0, description="Paused longer than this counts as inactive: no interventions."
    )
    watch_stale_margin_seconds: float = Field(
        60.0, ge=0, description="Content is dropped when the playhead is this far outside its stretch."
    )
    watch_event_time_tolerance_seconds: float = Field(
        2.0, ge=0, description="How far an event_time may go backwards before the event is rejected."
    )
    watch_outbox_size: int = Field(
        16, ge=1, description="Messages queued per stream for a slow client (the oldest are dropped)."
    )
    watch_flush_interval_seconds: float = Field(1.0, gt=0, description="How often buffered events are written.")
    watch_flush_batch: int = Field(500, ge=1, description="Buffered rows that trigger an immediate write.")
    watch_writer_max_pending: int = Field(
        20_000, ge=1, description="Buffered rows per process before event intake waits for the database."
    )
    watch_session_idle_seconds: float = Field(
        600.0, gt=0, description="A watch session without streams or events is unloaded after this."
    )
    watch_owner_lease_seconds: float = Field(
        30.0, gt=0, description="Replica ownership lease of a watch session in Redis (renewed while loaded)."
    )
    watch_forward_timeout_seconds: float = Field(
        2.0, gt=0, description="Wait for the owning replica to answer forwarded events before taking over."
    )
    gc_generation2_threshold: int = Field(
        1000, ge=1, description="`serve`: middle-generation garbage collections per full one (CPython default 10)."
    )

    # --- analytics -----------------------------------------------------------------------------
    analytics_bin_seconds: float = Field(30.0, gt=0, description="Segment width for confusion peaks.")
    analytics_peak_min_score: float = Field(
        1.5, gt=0, description="Confusion relative to the video's baseline a segment needs to be a peak."
    )

    # --- retention -----------------------------------------------------------------------------
    interaction_retention_days: int = Field(90, description="Age after which AI interactions are deleted.")
    retention_interval_seconds: float = Field(
        3600.0, gt=0, description="How often the retention job is queued (by any worker's sweep)."
    )

    @cached_property
    def llm_enabled(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    def price_for(self, model: str) -> tuple[float, float]:
        price = self.model_prices.get(model, {})
        return float(price.get("input_per_million", 0.0)), float(price.get("output_per_million", 0.0))
