"""Permission tables as data: policies/roles.toml and policies/field_visibility.toml.

Loaded and validated once at start-up; a bad file stops start-up with a message naming
the file and the problem.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from app.cases.workflow import Stage
from app.victims.fields import ALL_SEALED_FIELDS, FIELD_GROUPS
from app.vocab import AgencyType, Role

ROLES = tuple(r.value for r in Role)
AGENCY_TYPES = tuple(a.value for a in AgencyType)
PERMISSIONS = frozenset(
    {
        "case.create",
        "case.read",
        "case.update",
        "case.refer",
        "case.transition",
        "victim.read",
        "victim.update",
        "victim.reveal",
        "victim.erase",
        "consent.manage",
        "note.create",
        "assistance.record",
        "duplicates.check",
        "proceedings.manage",
        "residence.manage",
        "best_interests.record",
        "handover.manage",
        "stats.read",
        "audit.read",
        "users.manage",
        "agencies.manage",
        "break_glass.request",
        "break_glass.review",
    }
)
STAGES = tuple(s.value for s in Stage)


class PolicyError(Exception):
    pass


class RolePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    agency_types: tuple[str, ...]
    scope: Literal["agency", "assigned", "national", "none"]
    mfa_required: bool
    permissions: frozenset[str]

    @field_validator("agency_types")
    @classmethod
    def _known_agency_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(AGENCY_TYPES)
        if unknown:
            raise ValueError(f"unknown agency types {sorted(unknown)}")
        return value

    @field_validator("permissions")
    @classmethod
    def _known_permissions(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = set(value) - PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permissions {sorted(unknown)}")
        return value


class RoleVisibility(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: tuple[str, ...] = ()
    stages: dict[str, tuple[str, ...]] = {}

    @field_validator("default")
    @classmethod
    def _known_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(FIELD_GROUPS)
        if unknown:
            raise ValueError(f"unknown field groups {sorted(unknown)}")
        return value

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for stage, groups in value.items():
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}")
            unknown = set(groups) - set(FIELD_GROUPS)
            if unknown:
                raise ValueError(f"unknown field groups {sorted(unknown)} for stage {stage}")
        return value


def _load_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise PolicyError(f"{path}: file is missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from exc


def _format(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


@dataclass(frozen=True)
class AccessPolicy:
    roles: dict[str, RolePolicy]
    visibility: dict[str, RoleVisibility]

    def role(self, role: str) -> RolePolicy:
        try:
            return self.roles[role]
        except KeyError as exc:
            raise PolicyError(f"unknown role {role!r}") from exc

    def can(self, role: str, permission: str) -> bool:
        if permission not in PERMISSIONS:
            raise PolicyError(f"unknown permission {permission!r}")
        policy = self.roles.get(role)
        return policy is not None and permission in policy.permissions

    def visible_groups(self, role: str, stage: str) -> frozenset[str]:
        vis = self.visibility.get(role)
        if vis is None or self.roles[role].scope in ("national", "none"):
            return frozenset()
        return frozenset(vis.stages.get(stage, vis.default))

    def visible_fields(self, role: str, stage: str, table: str) -> frozenset[str]:
        groups = self.visible_groups(role, stage)
        return frozenset(
            f.name for f in ALL_SEALED_FIELDS if f.table == table and f.group in groups
        )


def load_access_policy(policies_dir: Path) -> AccessPolicy:
    roles_path = policies_dir / "roles.toml"
    vis_path = policies_dir / "field_visibility.toml"
    raw_roles = _load_toml(roles_path).get("roles")
    if not isinstance(raw_roles, dict):
        raise PolicyError(f"{roles_path}: a [roles.<name>] table is required")
    roles: dict[str, RolePolicy] = {}
    for name, body in raw_roles.items():
        if name not in ROLES:
            raise PolicyError(f"{roles_path}: unknown role {name!r}")
        try:
            roles[name] = RolePolicy.model_validate(body)
        except ValidationError as exc:
            raise PolicyError(f"{roles_path}: role {name}: {_format(exc)}") from exc
    missing = set(ROLES) - set(roles)
    if missing:
        raise PolicyError(f"{roles_path}: roles missing: {sorted(missing)}")
    raw_vis = _load_toml(vis_path).get("roles", {})
    if not isinstance(raw_vis, dict):
        raise PolicyError(f"{vis_path}: [roles.<name>] tables expected")
    visibility: dict[str, RoleVisibility] = {}
    for name, body in raw_vis.items():
        if name not in roles:
            raise PolicyError(f"{vis_path}: unknown role {name!r}")
        if roles[name].scope in ("national", "none"):
            raise PolicyError(
                f"{vis_path}: role {name} has scope {roles[name].scope} and may see no sealed field"
            )
        try:
            visibility[name] = RoleVisibility.model_validate(body)
        except ValidationError as exc:
            raise PolicyError(f"{vis_path}: role {name}: {_format(exc)}") from exc
    return AccessPolicy(roles=roles, visibility=visibility)


@lru_cache
def default_access_policy() -> AccessPolicy:
    from app.config import get_settings

    return load_access_policy(get_settings().policies_dir)
