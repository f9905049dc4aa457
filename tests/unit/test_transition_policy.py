"""policies/transitions.toml: loading, validation errors, and merging into the table."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from uuid import uuid4

import pytest

from app.cases.workflow import (
    TRANSITIONS,
    Allowed,
    CaseFacts,
    Event,
    Refused,
    Role,
    Stage,
    TransitionRequest,
    build_transitions,
    decide,
)
from app.policies.transitions import (
    DEFAULT_POLICY_PATH,
    TransitionPolicyError,
    load_transition_roles,
)

DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "transitions.toml"
    path.write_text(text, encoding="utf-8")
    return path


def replace_line(key: str, new_line: str) -> str:
    """The default file with the (single-line) entry for ``key`` replaced."""
    pattern = re.compile(rf"^{key} = .*$", re.MULTILINE)
    assert pattern.search(DEFAULT_TEXT), key
    return pattern.sub(new_line, DEFAULT_TEXT, count=1)


def test_the_default_file_covers_every_event_and_admin_fires_none() -> None:
    roles = load_transition_roles()
    assert set(roles) == set(Event)
    assert all(Role.admin not in allowed for allowed in roles.values())
    assert roles[Event.confirm_return_handover] == {Role.focal_point}
    assert roles[Event.cosign_return] == {Role.guardian}
    assert roles[Event.positive_reasonable_grounds] == {Role.police_officer}
    assert roles[Event.close] == {
        Role.ngo_caseworker,
        Role.social_worker,
        Role.focal_point,
        Role.coordinator,
    }


def test_the_table_takes_its_roles_from_the_file() -> None:
    roles = load_transition_roles()
    for (_, event), transition in TRANSITIONS.items():
        assert transition.roles == roles[event]


def test_unknown_event_is_named_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT + '\nfast_track_return = ["coordinator"]\n')
    with pytest.raises(TransitionPolicyError) as caught:
        load_transition_roles(path)
    assert str(path) in str(caught.value)
    assert "unknown event 'fast_track_return'" in str(caught.value)


def test_unknown_role_is_named_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, replace_line("close", 'close = ["coordinator", "judge"]'))
    with pytest.raises(TransitionPolicyError) as caught:
        load_transition_roles(path)
    assert str(path) in str(caught.value)
    assert "event 'close': unknown role 'judge'" in str(caught.value)


def test_missing_events_are_listed(tmp_path: Path) -> None:
    text = re.sub(r"^(close|cosign_return) = .*$", "", DEFAULT_TEXT, flags=re.MULTILINE)
    path = write(tmp_path, text)
    with pytest.raises(TransitionPolicyError) as caught:
        load_transition_roles(path)
    message = str(caught.value)
    assert str(path) in message
    assert "events missing from the file" in message
    assert "cosign_return" in message
    assert "close" in message


def test_admin_may_not_fire_case_events(tmp_path: Path) -> None:
    path = write(tmp_path, replace_line("close", 'close = ["coordinator", "admin"]'))
    with pytest.raises(TransitionPolicyError, match="role 'admin' may not fire case events"):
        load_transition_roles(path)


def test_duplicate_roles_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, replace_line("close", 'close = ["coordinator", "coordinator"]'))
    with pytest.raises(TransitionPolicyError, match="role listed twice: coordinator"):
        load_transition_roles(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("events = [", "not valid TOML"),
        ('version = 2\n[events]\nclose = ["coordinator"]\n', "version"),
        (DEFAULT_TEXT.replace("version = 1", ""), "version"),
        (DEFAULT_TEXT + "\n[extra]\nkey = 1\n", "extra"),
        (replace_line("close", 'close = "coordinator"'), "events.close"),
        (replace_line("close", "close = [1]"), "events.close"),
    ],
    ids=["bad-toml", "wrong-version", "no-version", "unknown-section", "not-a-list", "not-a-name"],
)
def test_malformed_files_fail_clearly(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TransitionPolicyError) as caught:
        load_transition_roles(path)
    assert str(caught.value).startswith(str(path))
    assert expected in str(caught.value)


def test_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(TransitionPolicyError, match="cannot read transition policy"):
        build_transitions(path)


def test_an_empty_list_disables_an_event(tmp_path: Path) -> None:
    path = write(tmp_path, replace_line("close", "close = []"))
    table = build_transitions(path)
    facts = CaseFacts(age=40, closure_reason="goals met")
    request = TransitionRequest(Event.close, uuid4(), Role.coordinator)
    assert isinstance(decide(Stage.long_term_support, request, facts), Allowed)
    refusal = decide(Stage.long_term_support, request, facts, table=table)
    assert isinstance(refusal, Refused)
    assert refusal.code == "role_not_permitted"


def test_a_country_file_can_widen_a_role(tmp_path: Path) -> None:
    path = write(
        tmp_path, replace_line("close", 'close = ["coordinator", "ngo_caseworker", "guardian"]')
    )
    table = build_transitions(path)
    facts = CaseFacts(age=40, closure_reason="goals met")
    request = TransitionRequest(Event.close, uuid4(), Role.guardian)
    assert isinstance(decide(Stage.long_term_support, request, facts), Refused)
    allowed = decide(Stage.long_term_support, request, facts, table=table)
    assert isinstance(allowed, Allowed)
    assert allowed.target == Stage.closed


def test_the_default_file_is_plain_toml() -> None:
    parsed = tomllib.loads(DEFAULT_TEXT)
    assert parsed["version"] == 1
    assert sorted(parsed["events"]) == sorted(event.value for event in Event)
