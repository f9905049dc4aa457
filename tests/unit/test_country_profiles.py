"""Country profiles: the shipped TOML files load, and broken files are refused readably."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from app.policies.countries import (
    AGENCY_TYPES,
    DEFAULT_PROFILE_DIR,
    CountryProfile,
    ProfileError,
    load_country_profile,
    load_country_profiles,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCED = "# configurable default: not sourced"

# A complete, valid profile; each malformed case below changes one line of it.
VALID = """\
code = "xx"
name = "Test profile"
country = "GB"
reasonable_grounds_deciders = ["coordinator_office", "police"]
identification_deciders = ["coordinator_office"]
referral_target_days = 1
reasonable_grounds_target_working_days = 5
min_reflection_days = 30
identification_gated_by_reflection = true
identification_target_days = 90
first_support_contact_hours = 48
reconsideration_window_days = 30
move_on_days_positive = 45
move_on_days_negative = 14
residence_permit_min_validity_days = 183
return_follow_up_checkpoints_days = [30, 90, 180, 365]
lost_contact_threshold_days = 14
due_soon_days = 3

[legal_basis]
framework = ["CETS 197"]
reasonable_grounds_decision = "RG within 5 working days"

[calendar]
weekend = [6, 7]
holidays_country = "GB"
holidays_subdivision = "ENG"
extra_holidays = [2026-12-24]
timezone = "Europe/London"
"""


def write_profile(directory: Path, text: str, stem: str = "xx") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


def error_for(tmp_path: Path, text: str, stem: str = "xx") -> str:
    path = write_profile(tmp_path, text, stem)
    with pytest.raises(ProfileError) as info:
        load_country_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


# --------------------------------------------------------------------------- shipped files


def test_default_profile_dir_is_the_repository_folder() -> None:
    assert DEFAULT_PROFILE_DIR == REPO_ROOT / "policies" / "countries"


def test_all_shipped_profiles_load() -> None:
    profiles = load_country_profiles(DEFAULT_PROFILE_DIR)
    assert {"coe_default", "uk", "pt", "ne"} <= set(profiles)
    shipped = {p.stem for p in DEFAULT_PROFILE_DIR.glob("*.toml")}
    assert set(profiles) == shipped
    for code, profile in profiles.items():
        assert profile.code == code
        assert profile.reasonable_grounds_deciders
        assert profile.identification_deciders
        assert set(profile.reasonable_grounds_deciders) <= set(AGENCY_TYPES)


def test_uk_profile_figures() -> None:
    uk = load_country_profiles(DEFAULT_PROFILE_DIR)["uk"]
    assert uk.country == "GB"
    assert uk.reasonable_grounds_target_working_days == 5
    assert uk.min_reflection_days == 30
    assert uk.identification_gated_by_reflection is True
    assert uk.reconsideration_window_days == 30
    assert uk.move_on_days_positive == 45
    assert uk.move_on_days_negative == 14
    assert uk.first_support_contact_hours == 48
    assert uk.calendar.weekend == (6, 7)
    assert uk.calendar.holidays_country == "GB"
    assert uk.calendar.holidays_subdivision == "ENG"
    assert uk.calendar.timezone == "Europe/London"


def test_coe_default_profile_figures() -> None:
    coe = load_country_profiles(DEFAULT_PROFILE_DIR)["coe_default"]
    assert coe.country == "ZZ"
    assert coe.min_reflection_days >= 30  # CETS 197 Art. 13
    assert coe.residence_permit_min_validity_days >= 181  # 6 months, Dir. 2004/81 Art. 8
    assert coe.calendar.holidays_country is None


def test_portugal_and_niger_profiles() -> None:
    profiles = load_country_profiles(DEFAULT_PROFILE_DIR)
    pt, ne = profiles["pt"], profiles["ne"]
    assert pt.country == "PT"
    assert 30 <= pt.min_reflection_days <= 60  # Lei 23/2007 art. 111(2)
    assert pt.residence_permit_min_validity_days == 365  # Lei 23/2007 art. 109(5)
    assert pt.calendar.timezone == "Europe/Lisbon"
    assert ne.country == "NE"
    assert ne.calendar.weekend == (6, 7)
    assert ne.calendar.holidays_country == "NE"
    assert ne.calendar.timezone == "Africa/Niamey"
    assert "2010-86" in ne.legal_basis.for_deadline("reflection_minimum_end")


@pytest.mark.parametrize("stem", ["pt", "ne", "coe_default", "uk"])
def test_unsourced_defaults_are_marked(stem: str) -> None:
    text = (DEFAULT_PROFILE_DIR / f"{stem}.toml").read_text(encoding="utf-8")
    assert NOT_SOURCED in text


def test_legal_basis_falls_back_to_framework(tmp_path: Path) -> None:
    profile = load_country_profile(write_profile(tmp_path, VALID))
    assert profile.legal_basis.for_deadline("reasonable_grounds_decision") == (
        "RG within 5 working days"
    )
    assert profile.legal_basis.for_deadline("move_on_end") == "CETS 197"


def test_valid_template_loads_with_its_values(tmp_path: Path) -> None:
    profile = load_country_profile(write_profile(tmp_path, VALID))
    assert isinstance(profile, CountryProfile)
    assert profile.calendar.extra_holidays == (date(2026, 12, 24),)
    assert profile.may_decide_reasonable_grounds("police")
    assert not profile.may_decide_identification("police")
    assert profile.return_follow_up_checkpoints_days == (30, 90, 180, 365)


def test_profiles_are_frozen(tmp_path: Path) -> None:
    profile = load_country_profile(write_profile(tmp_path, VALID))
    with pytest.raises(ValueError, match="frozen"):
        profile.min_reflection_days = 0  # type: ignore[misc]


# --------------------------------------------------------------------------- malformed files


def test_message_names_the_file_relative_to_the_given_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_profile(
        Path("policies/countries"),
        edit("min_reflection_days = 30", "min_reflection_days = -1").replace(
            'code = "xx"', 'code = "uk"'
        ),
        stem="uk",
    )
    with pytest.raises(ProfileError) as info:
        load_country_profiles(Path("policies/countries"))
    assert str(info.value) == "policies/countries/uk.toml: min_reflection_days must be >= 0"


def test_bad_toml(tmp_path: Path) -> None:
    message = error_for(tmp_path, edit("due_soon_days = 3", "due_soon_days = "))
    assert message.startswith("is not valid TOML (")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "xx.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ProfileError, match=r"xx\.toml: is not valid UTF-8 text$"):
        load_country_profile(path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, edit("due_soon_days = 3", "due_soon_days = 3\ncolour = 'blue'"))
    assert message == "unknown key 'colour'"


def test_unknown_calendar_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, edit("weekend = [6, 7]", "weekends = [6, 7]"))
    assert message == "missing required key 'calendar.weekend'; unknown key 'calendar.weekends'"


def test_missing_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, edit("due_soon_days = 3\n", ""))
    assert message == "missing required key 'due_soon_days'"


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        (
            "min_reflection_days = 30",
            "min_reflection_days = -1",
            "min_reflection_days must be >= 0",
        ),
        (
            "referral_target_days = 1",
            "referral_target_days = -3",
            "referral_target_days must be >= 0",
        ),
        ("due_soon_days = 3", "due_soon_days = -1", "due_soon_days must be >= 0"),
        (
            "return_follow_up_checkpoints_days = [30, 90, 180, 365]",
            "return_follow_up_checkpoints_days = [30, -90]",
            "return_follow_up_checkpoints_days[1] must be > 0",
        ),
    ],
)
def test_negative_numbers(tmp_path: Path, line: str, replacement: str, expected: str) -> None:
    assert error_for(tmp_path, edit(line, replacement)) == expected


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        ('min_reflection_days = "30"', "min_reflection_days must be a whole number, not '30'"),
        ("min_reflection_days = 30.5", "min_reflection_days must be a whole number, not 30.5"),
        ("min_reflection_days = true", "min_reflection_days must be a whole number, not True"),
    ],
)
def test_wrong_number_types(tmp_path: Path, replacement: str, expected: str) -> None:
    assert error_for(tmp_path, edit("min_reflection_days = 30", replacement)) == expected


def test_non_boolean_gate(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        edit("identification_gated_by_reflection = true", "identification_gated_by_reflection = 1"),
    )
    assert message == "identification_gated_by_reflection must be true or false, not 1"


def test_unknown_agency_type(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        edit(
            'reasonable_grounds_deciders = ["coordinator_office", "police"]',
            'reasonable_grounds_deciders = ["coordinator_office", "court"]',
        ),
    )
    assert message == (
        "reasonable_grounds_deciders[1]: unknown agency type 'court' (expected one of: ngo, "
        "police, social_services, prosecutor, coordinator_office, foreign_focal_point)"
    )


def test_no_decider(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        edit('identification_deciders = ["coordinator_office"]', "identification_deciders = []"),
    )
    assert message == "identification_deciders must not be empty"


def test_duplicate_decider(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        edit(
            'identification_deciders = ["coordinator_office"]',
            'identification_deciders = ["police", "police"]',
        ),
    )
    assert message == "identification_deciders: must not list the same value twice"


@pytest.mark.parametrize(("weekend", "bad"), [("[6, 8]", 8), ("[0, 7]", 0)])
def test_bad_weekday(tmp_path: Path, weekend: str, bad: int) -> None:
    message = error_for(tmp_path, edit("weekend = [6, 7]", f"weekend = {weekend}"))
    position = weekend.strip("[]").split(", ").index(str(bad))
    assert message == (
        f"calendar.weekend[{position}]: {bad} is not an ISO weekday number (1=Monday ... 7=Sunday)"
    )


def test_weekend_of_seven_days(tmp_path: Path) -> None:
    message = error_for(tmp_path, edit("weekend = [6, 7]", "weekend = [1, 2, 3, 4, 5, 6, 7]"))
    assert message == "calendar.weekend: must leave at least one working day"


def test_bad_timezone(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, edit('timezone = "Europe/London"', 'timezone = "Europe/Atlantis"')
    )
    assert message == "calendar.timezone: unknown IANA time zone 'Europe/Atlantis'"


def test_unknown_holiday_country(tmp_path: Path) -> None:
    text = edit('holidays_country = "GB"', 'holidays_country = "QQ"')
    message = error_for(tmp_path, text)
    assert message == "calendar: holidays_country 'QQ' is not known to the holidays library"


def test_unknown_holiday_subdivision(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, edit('holidays_subdivision = "ENG"', 'holidays_subdivision = "XYZ"')
    )
    assert message.startswith("calendar: holidays_subdivision 'XYZ' is not a subdivision of 'GB'")


def test_bad_extra_holiday(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, edit("extra_holidays = [2026-12-24]", 'extra_holidays = ["24/12/2026"]')
    )
    assert message == "calendar.extra_holidays[0] must be a date (YYYY-MM-DD), not '24/12/2026'"


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        ("gb", "country: 'gb' is not an ISO 3166-1 alpha-2 code (two capital letters)"),
        ("UK", "country: 'UK' is not an assigned ISO 3166-1 alpha-2 code"),
    ],
)
def test_bad_country(tmp_path: Path, country: str, expected: str) -> None:
    assert error_for(tmp_path, edit('country = "GB"', f'country = "{country}"')) == expected


@pytest.mark.parametrize("country", ["ZZ", "XK", "NE"])
def test_user_assigned_country_codes_accepted(tmp_path: Path, country: str) -> None:
    text = edit('country = "GB"', f'country = "{country}"')
    assert load_country_profile(write_profile(tmp_path, text)).country == country


def test_code_must_match_file_stem(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID, stem="uk")
    assert message == "code 'xx' does not match the file name (expected 'uk')"


def test_gated_target_inside_reflection_period(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, edit("identification_target_days = 90", "identification_target_days = 30")
    )
    assert message == (
        "identification_target_days (30) must be greater than min_reflection_days (30) when "
        "identification_gated_by_reflection is true, otherwise the target falls inside the "
        "reflection period"
    )


def test_checkpoints_must_increase(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        edit(
            "return_follow_up_checkpoints_days = [30, 90, 180, 365]",
            "return_follow_up_checkpoints_days = [90, 30]",
        ),
    )
    assert message == "return_follow_up_checkpoints_days: must be strictly increasing"


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = edit("min_reflection_days = 30", "min_reflection_days = -1")
    text = text.replace('timezone = "Europe/London"', 'timezone = "Nowhere/Town"')
    message = error_for(tmp_path, text)
    assert message == (
        "min_reflection_days must be >= 0; calendar.timezone: unknown IANA time zone 'Nowhere/Town'"
    )


# --------------------------------------------------------------------------- directories


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_country_profiles(tmp_path)
    assert str(info.value) == f"{tmp_path}: contains no country profiles (*.toml files)"


def test_directory_with_only_other_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("profiles go here", encoding="utf-8")
    with pytest.raises(ProfileError, match="contains no country profiles"):
        load_country_profiles(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ProfileError) as info:
        load_country_profiles(missing)
    assert str(info.value) == f"{missing}: is not a directory of country profiles"


def test_one_bad_file_among_good_ones_is_named(tmp_path: Path) -> None:
    write_profile(tmp_path, VALID, stem="xx")
    write_profile(tmp_path, VALID.replace('code = "xx"', 'code = "yy"'), stem="yy")
    bad = write_profile(
        tmp_path,
        VALID.replace('code = "xx"', 'code = "zz"').replace(
            'timezone = "Europe/London"', 'timezone = "Mars/Olympus"'
        ),
        stem="zz",
    )
    with pytest.raises(ProfileError) as info:
        load_country_profiles(tmp_path)
    assert str(info.value) == f"{bad}: calendar.timezone: unknown IANA time zone 'Mars/Olympus'"
    assert info.value.source == str(bad)


def test_loads_all_files_keyed_by_code(tmp_path: Path) -> None:
    write_profile(tmp_path, VALID, stem="xx")
    write_profile(tmp_path, VALID.replace('code = "xx"', 'code = "yy"'), stem="yy")
    profiles = load_country_profiles(tmp_path)
    assert sorted(profiles) == ["xx", "yy"]
    assert profiles["yy"].code == "yy"
