"""Application-wide, read-only collaborators built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.authz.policy import AccessPolicy, load_access_policy
from app.config import Settings
from app.crypto.keyring import FileKeyRing
from app.crypto.service import KeyService
from app.policies.countries import CountryProfile, load_country_profiles
from app.policies.retention import POLICY_FILE, RetentionPolicy, load_retention_policy


@dataclass
class AppContext:
    settings: Settings
    keys: KeyService
    policy: AccessPolicy
    profiles: dict[str, CountryProfile]
    retention: RetentionPolicy

    def profile(self, code: str) -> CountryProfile:
        return self.profiles[code]


def build_context(settings: Settings) -> AppContext:
    """Load keys and validate every policy file; any problem stops start-up."""
    profiles = load_country_profiles(settings.policies_dir / "countries")
    if settings.default_country_profile not in profiles:
        raise ValueError(
            f"default country profile {settings.default_country_profile!r} is not in policies/countries"
        )
    return AppContext(
        settings=settings,
        keys=KeyService(
            FileKeyRing(settings.keys_dir), encryption_enabled=settings.encryption_enabled
        ),
        policy=load_access_policy(settings.policies_dir),
        profiles=profiles,
        # A bad retention.toml raises RetentionPolicyError naming the file and the problem.
        retention=load_retention_policy(settings.policies_dir / POLICY_FILE),
    )


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.context
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]
