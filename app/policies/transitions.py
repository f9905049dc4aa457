"""Load and validate ``policies/transitions.toml``: which roles may fire which case event.

The transition *graph* (stages, guards, legal bases) lives in code, in
:mod:`app.cases.workflow`; this file only says who may fire each event. Every event must be
listed (an empty list disables an event), every name must be known, and ``admin`` may fire
none. Any problem raises :class:`TransitionPolicyError` naming the file.

Deployment-specific checks (is this police officer's agency the competent authority?) are
not here: the service computes ``CaseFacts.actor_is_competent_authority`` from the country
profile and the decision guards read it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from app.config import REPO_ROOT
from app.policies.validation import describe_validation_error
from app.vocab import Event, Role

__all__ = [
    "DEFAULT_POLICY_PATH",
    "TransitionPolicyError",
    "TransitionRolePolicy",
    "load_transition_roles",
]

DEFAULT_POLICY_PATH = REPO_ROOT / "policies" / "transitions.toml"

# Roles that must never fire a case event (separation of duties).
FORBIDDEN_ROLES = frozenset({"admin"})


class TransitionPolicyError(ValueError):
    """The transition policy file is missing, unreadable or invalid."""


class TransitionRolePolicy(BaseModel):
    """The parsed file. ``events`` maps an event name to the role names that may fire it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1]
    events: dict[str, list[str]]

    @model_validator(mode="after")
    def _check_names(self) -> Self:
        known_events = {event.value for event in Event}
        known_roles = {role.value for role in Role}
        problems: list[str] = []
        for name in self.events:
            if name not in known_events:
                problems.append(f"unknown event '{name}'")
        missing = [event.value for event in Event if event.value not in self.events]
        if missing:
            problems.append("events missing from the file: " + ", ".join(missing))
        for name, roles in self.events.items():
            for role in roles:
                if role not in known_roles:
                    problems.append(f"event '{name}': unknown role '{role}'")
                elif role in FORBIDDEN_ROLES:
                    problems.append(f"event '{name}': role '{role}' may not fire case events")
            duplicates = sorted({role for role in roles if roles.count(role) > 1})
            if duplicates:
                problems.append(f"event '{name}': role listed twice: {', '.join(duplicates)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def roles_by_event(self) -> Mapping[Event, frozenset[Role]]:
        return MappingProxyType(
            {Event(name): frozenset(Role(r) for r in roles) for name, roles in self.events.items()}
        )


def load_transition_roles(
    path: Path | str = DEFAULT_POLICY_PATH,
) -> Mapping[Event, frozenset[Role]]:
    """Read and validate the role policy; the result covers every :class:`Event`."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TransitionPolicyError(f"{path}: cannot read transition policy: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TransitionPolicyError(f"{path}: not valid TOML: {exc}") from exc
    try:
        policy = TransitionRolePolicy.model_validate(raw)
    except ValidationError as exc:
        raise TransitionPolicyError(
            f"{path}: invalid transition policy: {describe_validation_error(exc)}"
        ) from exc
    return policy.roles_by_event()
