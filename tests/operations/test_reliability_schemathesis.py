"""R1 schema fuzzing: schemathesis against the app's own OpenAPI document, once per role.

Each role signs in (MFA roles complete TOTP) and every operation gets bounded examples
(PASSAGE_FUZZ_EXAMPLES, default 15), half of them aimed at a real case of the role's
agency so that requests get past the 404. Asserted: no server error and no response that
violates the documented schema (body, content type, headers). Undocumented status codes
are collected and reported separately (see docs/reliability.md).
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from app.auth.actor import Actor
from app.cases import service
from app.cases.schemas import RegistrationIn
from tests.builders import registration
from tests.conftest import ApiUser, BoundDatabase, make_settings
from tests.operations.test_reliability_support import reliability

pytestmark = [reliability, pytest.mark.postgres_only]

EXAMPLES = int(os.environ.get("PASSAGE_FUZZ_EXAMPLES", "15"))
ROLE_AGENCY = {
    "ngo_caseworker": "ngo",
    "police_officer": "police",
    "social_worker": "social_services",
    "prosecutor": "prosecutor",
    "guardian": "ngo",
    "coordinator": "coordinator_office",
    "focal_point": "coordinator_office",
    "admin": "coordinator_office",
}
SCHEMA_CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)
REPORTED_ONLY = ("status_code_conformance",)


def _checks() -> tuple[list[Any], list[Any]]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as oc

    asserted = [
        not_a_server_error,
        oc.response_schema_conformance,
        oc.content_type_conformance,
        oc.response_headers_conformance,
    ]
    return asserted, [oc.status_code_conformance]


def _title(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return "; ".join(_title(e) for e in inner)[:300]
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _check_name(check: Any) -> str:
    return getattr(check, "__name__", str(check))


@pytest.mark.parametrize("role", sorted(ROLE_AGENCY))
def test_fuzz_every_operation_as_role(role, world, session, connection, db_env, keys_dir):
    import schemathesis

    from app.main import create_app

    dev = make_settings(db_env, keys_dir, environment="development")
    app = create_app(dev, database=BoundDatabase(connection))
    app.state.rate_limits = type(app.state.rate_limits)(enabled=False)
    agency = world.agency(ROLE_AGENCY[role])
    user = world.user(role, agency)
    registrar = Actor(user.id, "ngo_caseworker", agency.id, agency_type=agency.type)
    case_ids = [
        str(
            service.register(
                session,
                app.state.context,
                registrar,
                RegistrationIn.model_validate(registration()),
            ).id
        )
        for _ in range(2)
    ]
    session.flush()
    client = ApiUser(app, user)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    asserted, reported = _checks()
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import negative_data_rejection

    negative = [not_a_server_error, negative_data_rejection]
    rng = random.Random(f"{role}-fuzz")
    failures: dict[str, list[str]] = defaultdict(list)
    undocumented: dict[str, set[int]] = defaultdict(set)
    calls = [0]

    def fuzz(operation: Any, label: str, mode: Any) -> None:
        checks = asserted if mode == GenerationMode.POSITIVE else negative

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
        def run(case: Any, aim: bool) -> None:
            params = case.path_parameters or {}
            # Aim positive cases at real cases; a negative case keeps its broken part (putting a
            # real id or a valid If-Match there would repair it and fake an "accepted" failure).
            aim = aim and mode == GenerationMode.POSITIVE
            if aim and "case_id" in params:
                params["case_id"] = rng.choice(case_ids)
            if aim and case.headers and "If-Match" in case.headers:
                case.headers["If-Match"] = '"1"'
            response = case.call(
                headers=dict(client.client.headers), cookies=dict(client.client.cookies)
            )
            calls[0] += 1
            for check in checks:
                if mode != GenerationMode.POSITIVE and response.status_code == 413:
                    # Oversize negative bodies are refused by the body-size limit: a rejection
                    # that schemathesis does not count as one.
                    continue
                try:
                    case.validate_response(response, checks=[check])
                except BaseException as exc:  # schemathesis raises a FailureGroup
                    failures[label].append(
                        f"{_check_name(check)}: {response.status_code} "
                        f"{case.method} {case.formatted_path} :: {_title(exc)}"
                    )
            for check in reported if mode == GenerationMode.POSITIVE else ():
                try:
                    case.validate_response(response, checks=[check])
                except BaseException:
                    undocumented[label].add(response.status_code)

        try:
            run()
        except Unsatisfiable:  # e.g. no way to make a parameterless operation's input invalid
            return

    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/api/v1/auth/"):
            continue  # would sign this client out or burn its TOTP step
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, f"{operation.method.upper()} {operation.path} [{mode}]", mode)

    print(f"\n{role}: {calls[0]} calls")
    for label, statuses in sorted(undocumented.items()):
        print(f"  undocumented status {sorted(statuses)} on {label}")
    summary = {label: sorted(set(items))[:3] for label, items in failures.items()}
    assert not failures, summary
