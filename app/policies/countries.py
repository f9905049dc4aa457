"""Per-country legal profiles for the referral mechanism.

A profile is a TOML file in ``policies/countries/`` (one file per profile, the file stem
is the profile ``code``). It holds the legal figures that drive case deadlines: target
times for referral and decisions, the minimum recovery and reflection period, move-on
periods, follow-up checkpoints, and the working-day calendar of the country.

Profiles are validated strictly: unknown keys, negative numbers, unknown agency types,
impossible weekdays and unknown time zones are all refused, and every refusal is reported
as a :class:`ProfileError` that names the file and the problem in plain words.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from app.config import REPO_ROOT
from app.vocab import AgencyType, is_country_code

__all__ = [
    "AGENCY_TYPES",
    "DEFAULT_PROFILE_DIR",
    "AgencyType",
    "CalendarSpec",
    "CountryProfile",
    "LegalBasis",
    "ProfileError",
    "load_country_profile",
    "load_country_profiles",
]

AGENCY_TYPES: tuple[str, ...] = tuple(member.value for member in AgencyType)
"""The agency type values (of :class:`app.vocab.AgencyType`) a profile may name."""

DEFAULT_PROFILE_DIR = REPO_ROOT / "policies" / "countries"
"""``policies/countries`` at the repository root."""

_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
# "ZZ" (ISO 3166-1 user-assigned) marks a profile that is not tied to a country. Every
# other code must pass app.vocab.is_country_code (ISO 3166-1 alpha-2, or "XK" for Kosovo).
_NO_COUNTRY = "ZZ"


class ProfileError(Exception):
    """A country profile (or the profile directory) could not be loaded.

    ``str(error)`` reads ``"<file>: <problem>[; <problem> ...]"``.
    """

    def __init__(self, source: Path | str, problems: Iterable[str]) -> None:
        self.source = str(source)
        self.problems = tuple(problems) or ("invalid profile",)
        super().__init__(f"{self.source}: {'; '.join(self.problems)}")


# --------------------------------------------------------------------------- field types


def _check_agency_type(value: Any) -> Any:
    if isinstance(value, str) and value not in AGENCY_TYPES:
        raise PydanticCustomError(
            "unknown_agency_type",
            "unknown agency type {value} (expected one of: {expected})",
            {"value": repr(value), "expected": ", ".join(AGENCY_TYPES)},
        )
    return value


def _check_weekday(value: int) -> int:
    if not 1 <= value <= 7:
        raise PydanticCustomError(
            "bad_weekday",
            "{value} is not an ISO weekday number (1=Monday ... 7=Sunday)",
            {"value": value},
        )
    return value


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("duplicates", "must not list the same value twice")
    return values


_Agency = Annotated[AgencyType, BeforeValidator(_check_agency_type)]
_Deciders = Annotated[tuple[_Agency, ...], Field(min_length=1), AfterValidator(_unique)]
_NonNegInt = Annotated[int, Field(strict=True, ge=0)]
_PositiveInt = Annotated[int, Field(strict=True, gt=0)]
_Text = Annotated[str, Field(strict=True), StringConstraints(strip_whitespace=True, min_length=1)]
_IsoWeekday = Annotated[int, Field(strict=True), AfterValidator(_check_weekday)]


# --------------------------------------------------------------------------- models


class CalendarSpec(BaseModel):
    """Which days count as working days, and the profile's local time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekend: Annotated[tuple[_IsoWeekday, ...], AfterValidator(_unique)]
    """ISO weekday numbers of the weekly rest days (1=Monday ... 7=Sunday)."""
    holidays_country: str | None = None
    """Country code understood by the ``holidays`` library, or None for no public holidays."""
    holidays_subdivision: str | None = None
    """Subdivision code for the ``holidays`` library (e.g. ``"ENG"``), if any."""
    extra_holidays: tuple[date, ...] = ()
    """Additional non-working days (ISO dates)."""
    timezone: str
    """IANA time zone name; day-based deadlines end at the end of the day in this zone."""

    @field_validator("weekend")
    @classmethod
    def _leaves_a_working_day(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) >= 7:
            raise PydanticCustomError("no_working_day", "must leave at least one working day")
        return value

    @field_validator("timezone")
    @classmethod
    def _loadable_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "bad_timezone", "unknown IANA time zone {value}", {"value": repr(value)}
            ) from None
        return value

    @model_validator(mode="after")
    def _known_holiday_calendar(self) -> CalendarSpec:
        if self.holidays_country is None:
            if self.holidays_subdivision is not None:
                raise PydanticCustomError(
                    "subdivision_without_country",
                    "holidays_subdivision is set but holidays_country is not",
                )
            return self
        supported = _supported_holiday_calendars()
        subdivisions = supported.get(self.holidays_country)
        if subdivisions is None:
            raise PydanticCustomError(
                "unknown_holidays_country",
                "holidays_country {value} is not known to the holidays library",
                {"value": repr(self.holidays_country)},
            )
        if self.holidays_subdivision is not None and self.holidays_subdivision not in subdivisions:
            raise PydanticCustomError(
                "unknown_holidays_subdivision",
                "holidays_subdivision {value} is not a subdivision of {country} (known: {known})",
                {
                    "value": repr(self.holidays_subdivision),
                    "country": repr(self.holidays_country),
                    "known": ", ".join(subdivisions) or "none",
                },
            )
        return self

    @property
    def tzinfo(self) -> ZoneInfo:
        """The profile time zone (``ZoneInfo`` caches instances, so this is cheap)."""
        return ZoneInfo(self.timezone)


class LegalBasis(BaseModel):
    """Short citations for the profile as a whole and, optionally, for each deadline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: Annotated[tuple[_Text, ...], Field(min_length=1)]
    """The instruments the profile rests on, most specific first."""
    referral: _Text | None = None
    reasonable_grounds_decision: _Text | None = None
    first_support_contact: _Text | None = None
    reflection_minimum_end: _Text | None = None
    identification_decision: _Text | None = None
    reconsideration_window_end: _Text | None = None
    move_on_end: _Text | None = None
    residence_permit_expiry: _Text | None = None
    return_follow_up: _Text | None = None
    lost_contact_check: _Text | None = None

    def for_deadline(self, kind: str) -> str:
        """The citation for a deadline kind, falling back to the framework instruments."""
        specific = getattr(self, kind) if kind in type(self).model_fields else None
        if isinstance(specific, str):
            return specific
        return "; ".join(self.framework)


class CountryProfile(BaseModel):
    """The legal figures of one national (or default) referral mechanism."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[str, Field(strict=True)]
    """Profile id; equals the file stem (``uk`` for ``uk.toml``)."""
    name: _Text
    country: Annotated[str, Field(strict=True)]
    """ISO 3166-1 alpha-2 code; ``"ZZ"`` for a profile not tied to a country; ``"XK"`` Kosovo."""
    legal_basis: LegalBasis

    reasonable_grounds_deciders: _Deciders
    """Agency types allowed to take the reasonable-grounds decision."""
    identification_deciders: _Deciders
    """Agency types allowed to take the (conclusive) identification decision."""

    referral_target_days: _NonNegInt
    """Detection -> referral, calendar days."""
    reasonable_grounds_target_working_days: _NonNegInt
    """Referral -> reasonable-grounds decision, working days."""
    min_reflection_days: _NonNegInt
    """Minimum recovery and reflection period from a positive reasonable-grounds decision."""
    identification_gated_by_reflection: Annotated[bool, Field(strict=True)]
    """No identification decision before the minimum reflection period has run out."""
    identification_target_days: _NonNegInt
    """Positive reasonable grounds -> identification decision, calendar days."""
    first_support_contact_hours: _NonNegInt
    """Positive reasonable grounds -> first contact by the support provider, hours."""
    reconsideration_window_days: _NonNegInt
    """Calendar days after a negative decision within which reconsideration may be asked."""
    move_on_days_positive: _NonNegInt
    """Move-on support period after a positive identification decision, calendar days."""
    move_on_days_negative: _NonNegInt
    """Move-on support period after a negative decision, calendar days."""
    residence_permit_min_validity_days: _NonNegInt
    """Minimum validity of a victim's residence permit, calendar days."""
    return_follow_up_checkpoints_days: tuple[_PositiveInt, ...]
    """Days after return at which a follow-up contact is due, strictly increasing."""
    lost_contact_threshold_days: _NonNegInt
    """Days without contact after which the case must be checked for lost contact."""
    due_soon_days: _NonNegInt
    """How many days before its due time a deadline counts as due soon."""

    calendar: CalendarSpec

    @field_validator("code")
    @classmethod
    def _code_shape(cls, value: str) -> str:
        if not _CODE_RE.fullmatch(value):
            raise PydanticCustomError(
                "bad_code",
                "{value} must be lower-case letters, digits and underscores, "
                "starting with a letter",
                {"value": repr(value)},
            )
        return value

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        if not _COUNTRY_RE.fullmatch(value):
            raise PydanticCustomError(
                "bad_country",
                "{value} is not an ISO 3166-1 alpha-2 code (two capital letters)",
                {"value": repr(value)},
            )
        if value != _NO_COUNTRY and not is_country_code(value):
            raise PydanticCustomError(
                "unknown_country",
                "{value} is not an assigned ISO 3166-1 alpha-2 code",
                {"value": repr(value)},
            )
        return value

    @field_validator("return_follow_up_checkpoints_days")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(later <= earlier for earlier, later in pairwise(value)):
            raise PydanticCustomError("not_increasing", "must be strictly increasing")
        return value

    @model_validator(mode="after")
    def _target_after_reflection(self) -> CountryProfile:
        if (
            self.identification_gated_by_reflection
            and self.min_reflection_days > 0
            and self.identification_target_days <= self.min_reflection_days
        ):
            raise PydanticCustomError(
                "target_inside_reflection",
                "identification_target_days ({target}) must be greater than "
                "min_reflection_days ({reflection}) when identification_gated_by_reflection "
                "is true, otherwise the target falls inside the reflection period",
                {
                    "target": self.identification_target_days,
                    "reflection": self.min_reflection_days,
                },
            )
        return self

    def may_decide_reasonable_grounds(self, agency_type: str) -> bool:
        return agency_type in self.reasonable_grounds_deciders

    def may_decide_identification(self, agency_type: str) -> bool:
        return agency_type in self.identification_deciders


# --------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def _supported_holiday_calendars() -> dict[str, list[str]]:
    return holidays.list_supported_countries()


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _describe(error: ErrorDetails) -> str:
    """One pydantic error in plain words, prefixed by the key it concerns."""
    where = _location(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "missing":
        return f"missing required key '{where}'"
    if kind == "extra_forbidden":
        return f"unknown key '{where}'"
    if kind == "greater_than_equal":
        return f"{where} must be >= {ctx['ge']}"
    if kind == "greater_than":
        return f"{where} must be > {ctx['gt']}"
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return f"{where} must be a whole number, not {error['input']!r}"
    if kind in {"bool_type", "bool_parsing"}:
        return f"{where} must be true or false, not {error['input']!r}"
    if kind == "string_type":
        return f"{where} must be a text string, not {error['input']!r}"
    if kind == "too_short":
        if ctx.get("min_length", 0) == 1:
            return f"{where} must not be empty"
        return f"{where} must have at least {ctx.get('min_length')} entries"
    if kind.startswith("date_"):
        return f"{where} must be a date (YYYY-MM-DD), not {error['input']!r}"
    msg = error["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def load_country_profile(path: Path) -> CountryProfile:
    """Read and validate one profile file; the profile code must equal the file stem."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ProfileError(path, [f"cannot be read ({exc.strerror or exc})"]) from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(path, ["is not valid UTF-8 text"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path, [f"is not valid TOML ({exc})"]) from exc
    try:
        profile = CountryProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(path, [_describe(err) for err in exc.errors()]) from exc
    if profile.code != path.stem:
        raise ProfileError(
            path,
            [f"code {profile.code!r} does not match the file name (expected {path.stem!r})"],
        )
    return profile


def load_country_profiles(directory: Path) -> dict[str, CountryProfile]:
    """Load every ``*.toml`` profile in ``directory``, keyed by profile code.

    Raises :class:`ProfileError` for a missing or empty directory and for the first file
    that is not valid TOML or not a valid profile.
    """
    if not directory.is_dir():
        raise ProfileError(directory, ["is not a directory of country profiles"])
    files = sorted(p for p in directory.glob("*.toml") if p.is_file())
    if not files:
        raise ProfileError(directory, ["contains no country profiles (*.toml files)"])
    return {path.stem: load_country_profile(path) for path in files}
