"""Load and validate ``policies/retention.toml``: how long each resting case is kept.

The schedule is data, validated with pydantic: a bad file stops start-up (and `passage
retention check`) with a message naming the file and the problem. Applying it (planning,
legal holds, erasure) is the retention job's work, in :mod:`app.operations.retention`.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.cases.workflow import ACTIVE_PROCEEDINGS, ProceedingsStatus, Stage
from app.policies.validation import describe_validation_error
from app.vocab import ClosureReason

POLICY_FILE = "retention.toml"
#: Stages a schedule may apply to. Everything else is open work (or a missing child) and is
#: never erased by schedule.
RESTING_STAGES = frozenset(
    {Stage.closed.value, Stage.declined_formal_identification.value, Stage.lost_contact.value}
)
Anchor = Literal["closed_at", "stage_entered_at", "last_contact_at"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")


class RetentionPolicyError(ValueError):
    """The retention policy file is missing, unreadable or invalid."""


class _Keep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    anchor: Anchor
    keep_years: int = Field(default=0, ge=0, le=100)
    keep_days: int = Field(default=0, ge=0, le=36_500)

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.keep_years == 0 and self.keep_days == 0:
            raise ValueError("keep_years or keep_days must be more than 0")
        return self

    def expiry(self, anchor_value: datetime) -> datetime:
        return _add_years(anchor_value, self.keep_years) + timedelta(days=self.keep_days)

    def describe(self) -> str:
        parts = []
        if self.keep_years:
            parts.append(f"{self.keep_years} years")
        if self.keep_days:
            parts.append(f"{self.keep_days} days")
        return " + ".join(parts) + f" after {self.anchor}"


class RetentionRule(_Keep):
    name: str
    stage: str
    closure_reason: str | None = None
    description: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = []
        if not _NAME.fullmatch(self.name) or self.name == "default":
            problems.append(
                f"rule name {self.name!r} must be a lower-case code other than 'default'"
            )
        if self.stage not in {s.value for s in Stage}:
            problems.append(f"rule {self.name}: unknown stage {self.stage!r}")
        elif self.stage not in RESTING_STAGES:
            problems.append(
                f"rule {self.name}: stage {self.stage!r} is open work; rules apply only to "
                + ", ".join(sorted(RESTING_STAGES))
            )
        if self.closure_reason is not None:
            if self.stage != Stage.closed.value:
                problems.append(f"rule {self.name}: closure_reason applies to stage 'closed' only")
            if self.closure_reason not in {r.value for r in ClosureReason}:
                problems.append(f"rule {self.name}: unknown closure reason {self.closure_reason!r}")
        if self.anchor == "closed_at" and self.stage != Stage.closed.value:
            problems.append(f"rule {self.name}: anchor closed_at is only set on closed cases")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DefaultRule(_Keep):
    description: str | None = Field(default=None, max_length=300)
    name: Literal["default"] = "default"


class LegalHold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    proceedings_status: list[str]
    compensation_claimed: Literal[True]

    @model_validator(mode="after")
    def _check(self) -> Self:
        known = {s.value for s in ProceedingsStatus}
        unknown = sorted(set(self.proceedings_status) - known)
        if unknown:
            raise ValueError("unknown proceedings status: " + ", ".join(unknown))
        missing = sorted({s.value for s in ACTIVE_PROCEEDINGS} - set(self.proceedings_status))
        if missing:
            raise ValueError(
                "the hold must cover every active proceedings status; missing: "
                + ", ".join(missing)
            )
        return self


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1]
    legal_hold: LegalHold
    default: DefaultRule
    rules: list[RetentionRule]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        problems = []
        names = Counter(rule.name for rule in self.rules)
        problems += [f"rule name {n!r} is used twice" for n, c in names.items() if c > 1]
        keys = Counter((rule.stage, rule.closure_reason) for rule in self.rules)
        problems += [
            f"two rules for stage {s!r}" + (f" and closure reason {r!r}" if r else "")
            for (s, r), c in keys.items()
            if c > 1
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def rule_for(
        self, stage: str, closure_reason: str | None
    ) -> RetentionRule | DefaultRule | None:
        """The rule a case falls under, or None for a case that never expires (open work)."""
        if stage not in RESTING_STAGES:
            return None
        by_key = {(r.stage, r.closure_reason): r for r in self.rules}
        if stage == Stage.closed.value:
            exact = by_key.get((stage, closure_reason)) if closure_reason else None
            return exact or by_key.get((stage, None)) or self.default
        return by_key.get((stage, None))

    def rule_names(self) -> list[str]:
        return [rule.name for rule in self.rules] + ["default"]


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + years, month=2, day=28)


def load_retention_policy(path: Path) -> RetentionPolicy:
    """Read and validate the schedule; any problem raises an error naming the file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RetentionPolicyError(f"{path}: cannot read retention policy: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RetentionPolicyError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return RetentionPolicy.model_validate(raw)
    except ValidationError as exc:
        raise RetentionPolicyError(
            f"{path}: invalid retention policy: {describe_validation_error(exc)}"
        ) from exc
