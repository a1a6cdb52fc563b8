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
    llm_max_retries: int = Field(2, description="Retries on 429/5xx while the deadline allows.")
    llm_timeout_seconds: float = Field(60.0, description="Upper bound for one upstream call.")
    breaker_failure_threshold: int = Field(5, description="Consecutive failures that open the breaker.")
    breaker_cooldown_seconds: float = Field(30.0, description="Open-breaker time before a trial call.")
    history_token_budget: int = Field(3000, description="Tokens of history kept in a chat prompt.")
    response_cache_ttl_seconds: int = Field(3600, description="Identical-request replay window.")
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

    # --- retention -----------------------------------------------------------------------------
    interaction_retention_days: int = Field(90, description="Age after which AI interactions are deleted.")

    @cached_property
    def llm_enabled(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    def price_for(self, model: str) -> tuple[float, float]:
        price = self.model_prices.get(model, {})
        return float(price.get("input_per_million", 0.0)), float(price.get("output_per_million", 0.0))
