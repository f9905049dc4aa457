"""Settings, loaded from the environment (prefix PASSAGE_) and file-mounted secrets.

Refuses unsafe combinations instead of warning: production never starts with demo keys,
the embedded database, or a cookie that is not Secure.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_KEYS_MARKER = "DEMO_KEYS"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PASSAGE_", env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'passage.db'}"
    # Owner connection for migrations; the app connects with a role that does not own tables.
    migration_database_url: str | None = None
    db_app_role: str | None = Field(
        default=None,
        description="PostgreSQL role the app runs as; migrations grant it least privilege.",
    )
    keys_dir: Path = REPO_ROOT / "var" / "keys"
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
