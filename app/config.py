"""Settings, loaded from the environment (prefix PASSAGE_) and file-mounted secrets.

Refuses unsafe combinations instead of warning: production never starts with demo keys,
the embedded database, or a cookie that is not Secure.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PACKAGE_DIR = Path(__file__).resolve().parent
_BUNDLE_DIR = _PACKAGE_DIR / "_bundle"
# Where the runtime files live (alembic.ini, migrations/, policies/, frontend/): next to
# app/ in a checkout (or the image's /opt/passage), inside the package as app/_bundle when
# installed from the wheel (pyproject.toml maps the repository root there).
INSTALLED = (_BUNDLE_DIR / "alembic.ini").is_file()
REPO_ROOT = _BUNDLE_DIR if INSTALLED else _PACKAGE_DIR.parent
# Local state for the embedded default (SQLite file, demo keys, erasure journal): var/ of
# the checkout, or of the working directory when installed (never inside site-packages).
# Production sets every one of these paths explicitly.
VAR_DIR = Path.cwd() / "var" if INSTALLED else REPO_ROOT / "var"
DEMO_KEYS_MARKER = "DEMO_KEYS"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PASSAGE_", env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{VAR_DIR / 'passage.db'}"
    # Owner connection for migrations; the app connects with a role that does not own tables.
    migration_database_url: str | None = None
    db_app_role: str | None = Field(
        default=None,
        description="PostgreSQL role the app runs as; migrations grant it least privilege.",
    )
    keys_dir: Path = VAR_DIR / "keys"
    policies_dir: Path = REPO_ROOT / "policies"
    default_country_profile: str = "coe_default"
    base_url: str = "http://127.0.0.1:8000"
    session_cookie_secure: bool = True
    session_idle_minutes: int = Field(default=15, ge=1, le=120)
    session_absolute_hours: int = Field(default=12, ge=1, le=24)
    max_page_size: int = Field(default=100, ge=1, le=500)
    max_body_bytes: int = Field(default=1_000_000, ge=10_000)
    log_level: str = "INFO"
    redis_url: str | None = None
    encryption_enabled: bool = True  # only for the benchmark baseline; refused outside tests
    # Erasures are appended here (`passage erasure-journal drain`) and replayed after any
    # restore. Keep it outside the database, its backups and the key directory; None means
    # "not configured" and the commands that need it refuse to run.
    erasure_journal: Path | None = VAR_DIR / "erasure-journal" / "erasures.log"

    # Rate limits (app/operations/ratelimit.py, docs/reliability.md): requests per period,
    # then a burst allowance. Redis shares the counts between workers when redis_url is set.
    rate_limit_enabled: bool = True
    rate_limit_user_per_minute: int = Field(default=600, ge=1)
    rate_limit_user_burst: int = Field(default=120, ge=1)
    rate_limit_address_per_minute: int = Field(default=1200, ge=1)
    rate_limit_address_burst: int = Field(default=240, ge=1)
    rate_limit_sensitive_per_minute: int = Field(default=20, ge=1)
    rate_limit_sensitive_burst: int = Field(default=10, ge=1)
    rate_limit_sensitive_per_day: int = Field(default=500, ge=1)
    rate_limit_sensitive_daily_burst: int = Field(default=500, ge=1)

    # Bounded waits for PostgreSQL (app/db/engine.py, docs/reliability.md "Bounded waits").
    # A request that runs into one answers 503 with Retry-After. 0 disables a server-side
    # timeout (and, for statements, the client-side watchdog at statement timeout + 0.5 s).
    db_connect_timeout_seconds: int = Field(default=5, ge=2, le=60)  # libpq minimum is 2
    db_statement_timeout_seconds: float = Field(default=10.0, ge=0, le=3600)
    db_lock_timeout_seconds: float = Field(default=3.0, ge=0, le=3600)
    db_idle_in_transaction_timeout_seconds: float = Field(default=30.0, ge=0, le=3600)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)  # wait for a pooled slot
    db_ping_timeout_seconds: float = Field(default=2.0, gt=0, le=60)  # pool pre-ping deadline
    db_keepalives_idle_seconds: int = Field(default=30, ge=1)
    db_keepalives_interval_seconds: int = Field(default=10, ge=1)
    db_keepalives_count: int = Field(default=3, ge=1)
    # /readyz gives the database this long, then answers 503 (probes time out at 1 s).
    db_readiness_timeout_seconds: float = Field(default=0.8, gt=0, le=5)

    @field_validator("erasure_journal", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.environment == "production":
            problems: list[str] = []
            if (self.keys_dir / DEMO_KEYS_MARKER).exists():
                problems.append(
                    "the key directory holds demo keys (run 'passage init' on a fresh key dir)"
                )
            if self.database_url.startswith("sqlite"):
                problems.append(
                    "the embedded SQLite database is for evaluation only; use PostgreSQL"
                )
            if not self.session_cookie_secure:
                problems.append("session cookies must be Secure")
            if self.erasure_journal is None:
                problems.append(
                    "PASSAGE_ERASURE_JOURNAL must name the erasure journal (erasures are "
                    "journaled before they commit, so a restore cannot bring them back)"
                )
            if not self.base_url.startswith("https://"):
                problems.append("base_url must be https")
            if not self.encryption_enabled:
                problems.append("field encryption cannot be disabled")
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        elif not self.encryption_enabled and self.environment != "test":
            raise ValueError("field encryption can only be disabled in the test environment")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def show_api_docs(self) -> bool:
        return self.environment == "development"

    @property
    def owner_database_url(self) -> str:
        return self.migration_database_url or self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
