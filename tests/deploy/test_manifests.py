"""Static checks of the deployment files in deploy/ (no Docker engine, no Helm, no cluster).

What these tests check
- compose.yaml (parsed with PyYAML): the app runs read-only, non-root, without
  capabilities; it starts only after the `migrate` one-shot completed successfully; the
  key ring reaches it as a read-only bind mount of files (no key material in the
  environment); owner credentials reach only `migrate`; no password, token or
  credential-bearing URL is written inline; PgBouncer runs in transaction mode with SCRAM;
  PostgreSQL 15 has a healthcheck and a named volume; images are pinned; the connection
  pool arithmetic holds.
- Erasure journal (the app appends and fsyncs each erasure's line before the erasure
  commits, and refuses the erasure without it): in each deployment (systemd, compose,
  Helm) PASSAGE_ERASURE_JOURNAL names a file in a location writable by the app process,
  one file per node in a shared directory, outside the key directory, the PostgreSQL data
  volume and /tmp; the services or pods that run restore/retention mount the same
  directory.
- Dockerfile: multi-stage on python:3.11-slim (major.minor pinned), numeric non-root USER
  in the final stage, HEALTHCHECK on /healthz with python, the required ENTRYPOINT/CMD, no
  `ADD http...`, no compilers in the final stage, an allow-list .dockerignore.
- systemd units parse (configparser, strict=False); the app unit Requires= and After= the
  migrate one-shot and carries the hardening keys; only the migrate unit reads the owner
  credentials; where `systemd-analyze` exists, `systemd-analyze verify` finds no unknown
  directive (skipped otherwise).
- deploy/pgbouncer/scram_verifier.py reproduces the RFC 7677 SCRAM-SHA-256 example.
- nginx: TLS 1.2/1.3 only, a single HSTS header on every response, 1 MB body limit, login
  rate limit, forwarded headers, no add_header hidden inside a location.
- Kubernetes: every document of deploy/k8s/rendered.yaml validates against the
  Kubernetes 1.31 OpenAPI schemas with kubernetes-validate in strict mode (unknown fields
  are errors), plus the security properties (runAsNonRoot, readOnlyRootFilesystem,
  capabilities drop ALL, probes, the migration Job is a pre-install/pre-upgrade hook, the
  HPA targets the Deployment, the key Secret is a 0400 volume and never an env source,
  NetworkPolicy egress limited to PgBouncer, Redis and DNS); values.yaml validates
  against values.schema.json.

What keeps rendered.yaml in sync with the Helm templates, and what does not
Helm is not installed here, so rendered.yaml is written by hand. The tests check, without
helm: each template file has rendered sections and vice versa; the kinds each template
declares are the kinds rendered from it; every `.Values.x.y` a template uses exists in
values.yaml; and, line by line, every template line that is plain text or uses only
simple references (`.Values.path`, `| quote`, `.Release.Name/Namespace`, and the
`passage.fullname` / `passage.image` / `passage.serviceAccountName` helpers for release
"passage") appears in the rendered section, in the same order, inside `if`/`with` blocks
the default values switch on. Lines produced by toYaml, nindent, sha256sum and other
includes, and the content of `range` blocks, are NOT compared; neither is whitespace
trimming as Helm does it. The checksum/config annotations are checked against the
rendered ConfigMap text, which equals Helm's value only if that text is byte-identical to
Helm's output. Run `helm template passage deploy/helm/passage --namespace passage` and
`helm lint` wherever Helm is available (CI) to close the gap.
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import inspect
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.db.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
CHART = DEPLOY / "helm" / "passage"
RENDERED = DEPLOY / "k8s" / "rendered.yaml"
SYSTEMD = DEPLOY / "systemd"

# kubernetes-validate ships schemas for 1.25 ... 1.37; 1.31 is a conservative floor that
# every maintained cluster version at the time of writing supports.
K8S_VERSION = "1.31.0"
RELEASE = "passage"
NAMESPACE = "passage"

# user:password@ inside a URL
CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^@\s/]+@")
SECRETISH_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|CREDENTIAL|_KEY$|^KEY", re.I)


def _sqlalchemy_pool_max() -> int:
    """Connections one worker process may open: the app's make_engine defaults."""
    params = inspect.signature(make_engine).parameters
    return int(params["pool_size"].default) + int(params["max_overflow"].default)


# --------------------------------------------------------------------------- compose ---


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    if isinstance(files, str):
        files = [files]
    return [f if isinstance(f, str) else f["path"] for f in files]


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _resolve_default(value: str) -> str:
    """Compose interpolation `${VAR:-default}` -> default (the value without a .env)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_compose_app_is_read_only_and_unprivileged(services: dict[str, Any]) -> None:
    app = services["app"]
    assert app["read_only"] is True
    assert any(str(t).startswith("/tmp") for t in app["tmpfs"])
    uid = str(app["user"]).split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert app["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in app["security_opt"]
    assert "ports" not in app, "only nginx publishes ports"


def test_compose_app_waits_for_successful_migration(services: dict[str, Any]) -> None:
    depends = services["app"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["pgbouncer"]["condition"] == "service_healthy"
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pgbouncer" not in migrate.get("depends_on", {}), "migrations bypass PgBouncer"


def test_compose_owner_credentials_reach_only_migrate(services: dict[str, Any]) -> None:
    readers = [name for name, svc in services.items() if "migrate.env" in _env_files(svc)]
    assert readers == ["migrate"]
    for name, svc in services.items():
        assert "PASSAGE_MIGRATION_DATABASE_URL" not in _environment(svc), name
    owner = _read_env_file(COMPOSE_DIR / "migrate.env.example")["PASSAGE_MIGRATION_DATABASE_URL"]
    app = _read_env_file(COMPOSE_DIR / "env.example")["PASSAGE_DATABASE_URL"]
    assert "@postgres:5432/" in owner, "migrations connect directly to PostgreSQL"
    assert "@pgbouncer:6432/" in app, "the app connects through PgBouncer"
    assert "passage_app:" in app and "passage_owner:" in owner


def test_compose_keys_are_read_only_files_not_env(services: dict[str, Any]) -> None:
    app = services["app"]
    keys_dir = _environment(app)["PASSAGE_KEYS_DIR"]
    mounts = [
        v
        for v in app["volumes"]
        if isinstance(v, dict) and v.get("target") == keys_dir and v.get("type") == "bind"
    ]
    assert len(mounts) == 1, "the key ring must be mounted at PASSAGE_KEYS_DIR"
    assert mounts[0]["read_only"] is True
    assert mounts[0]["source"].startswith("./secrets/")
    assert mounts[0]["bind"]["create_host_path"] is False
    for name, svc in services.items():
        for key, value in _environment(svc).items():
            if key.startswith("PASSAGE_KEY") or "KEK" in key:
                assert key == "PASSAGE_KEYS_DIR" and value.startswith("/"), (name, key)
    for example in ("env.example", "migrate.env.example"):
        assert not any(
            k.startswith("PASSAGE_KEY") for k in _read_env_file(COMPOSE_DIR / example)
        ), f"{example} must not carry key material"
    # The only writable key mount is the opt-in admin service (rotation, retirement).
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            if isinstance(v, dict) and v.get("target") == keys_dir and not v.get("read_only"):
                assert svc.get("profiles") == ["admin"], name


def test_compose_has_no_inline_secrets(compose: dict[str, Any], services: dict[str, Any]) -> None:
    text = (COMPOSE_DIR / "compose.yaml").read_text()
    assert not CREDENTIAL_URL.search(text), "no user:password@ URL in compose.yaml"
    for name, svc in services.items():
        for key, value in _environment(svc).items():
            assert not CREDENTIAL_URL.search(value), (name, key)
            if SECRETISH_NAME.search(key):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), (name, key)
        for env_file in _env_files(svc):
            assert env_file in ("passage.env", "migrate.env"), (name, env_file)
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} must come from a file"
        assert secret["file"].startswith("./secrets/"), name
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    for entry in ("passage.env", "migrate.env", "secrets/*"):
        assert entry in ignored
    # Examples hold placeholders only.
    for example in ("env.example", "migrate.env.example"):
        for key, value in _read_env_file(COMPOSE_DIR / example).items():
            match = CREDENTIAL_URL.search(value)
            if match:
                assert ":CHANGE_ME@" in value, (example, key)


def test_compose_images_are_pinned(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        image = _resolve_default(svc["image"])
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: image without a tag"
        assert not image.endswith(":latest"), name
    assert _resolve_default(services["postgres"]["image"]).startswith("postgres:15")


def test_compose_postgres_has_healthcheck_and_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    postgres = services["postgres"]
    test = postgres["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test)
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "PostgreSQL data must live in a named volume"
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "ports" not in postgres


def test_compose_pgbouncer_uses_repository_config(services: dict[str, Any]) -> None:
    pgbouncer = services["pgbouncer"]
    assert "../pgbouncer/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro" in pgbouncer["volumes"]
    assert pgbouncer["command"] == ["/etc/pgbouncer/pgbouncer.ini"]
    targets = {s["target"] for s in pgbouncer["secrets"]}
    assert _pgbouncer_ini()["auth_file"] in targets
    assert pgbouncer["read_only"] is True
    assert "pg_isready" in " ".join(pgbouncer["healthcheck"]["test"])


def _pgbouncer_ini() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    parser.read_string((DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text())
    return dict(parser["pgbouncer"])


def test_pgbouncer_transaction_pooling_with_scram() -> None:
    ini = _pgbouncer_ini()
    assert ini["pool_mode"] == "transaction"
    assert ini["auth_type"] == "scram-sha-256"
    assert int(ini["max_client_conn"]) > 0
    assert int(ini["default_pool_size"]) > 0
    assert int(ini["default_pool_size"]) + int(ini["reserve_pool_size"]) <= int(
        ini["max_db_connections"]
    )


def test_pool_arithmetic_compose_and_systemd(services: dict[str, Any]) -> None:
    """app instances x workers x (pool_size + max_overflow) <= max_client_conn."""
    max_client_conn = int(_pgbouncer_ini()["max_client_conn"])
    command = [_resolve_default(str(a)) for a in services["app"]["command"]]
    compose_workers = int(command[command.index("--workers") + 1])
    assert compose_workers >= 2
    assert compose_workers * _sqlalchemy_pool_max() <= max_client_conn
    exec_start = _unit("passage.service")["Service"]["ExecStart"]
    vm_workers = int(re.search(r"--workers\s+(\d+)", exec_start).group(1))
    assert vm_workers == 2 * 2, "2 cores per app node -> 2 x cores workers"
    # Four such nodes behind one PgBouncer (the national sizing in docs/operations.md).
    assert 4 * vm_workers * _sqlalchemy_pool_max() <= max_client_conn


def test_compose_nginx_has_tls_secrets_and_edge_network(services: dict[str, Any]) -> None:
    nginx = services["nginx"]
    conf = _nginx()
    targets = {s["target"] for s in nginx["secrets"]}
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        path = re.search(rf"^\s*{directive}\s+(\S+);", conf, re.M).group(1)
        assert path in targets, directive
    assert nginx["read_only"] is True
    edge = services["app"]["environment"]["FORWARDED_ALLOW_IPS"]
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    assert compose["networks"]["edge"]["ipam"]["config"][0]["subnet"] == edge
    assert compose["networks"]["backend"]["internal"] is True
    assert "backend" not in nginx["networks"]


def test_scram_verifier_matches_rfc7677() -> None:
    """deploy/pgbouncer/scram_verifier.py against the RFC 7677 SCRAM-SHA-256 example."""
    import base64
    import hmac
    import runpy

    # run_path: no import side effects, no __pycache__ written under deploy/.
    module = SimpleNamespace(**runpy.run_path(str(DEPLOY / "pgbouncer" / "scram_verifier.py")))
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_key, server_key = module.scram_keys("pencil", salt, 4096)
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    ).encode()
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    line = module.userlist_line("passage_app", "0123456789abcdef0123")
    assert re.fullmatch(r'"passage_app" "SCRAM-SHA-256\$4096:[^$]+\$[^:]+:[^"]+"', line)
    with pytest.raises(ValueError):
        module.userlist_line("passage_app", "short")


# ------------------------------------------------------------------------ Dockerfile ---


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append(buffer + stripped)
        buffer = ""
    out = []
    for line in logical:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_multi_stage_on_pinned_slim_python() -> None:
    froms = [rest for word, rest in _dockerfile_instructions() if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    for rest in froms:
        image = rest.split()[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[a-f0-9]{64})?", image), (
            image
        )


def test_dockerfile_final_stage_runs_as_numeric_non_root() -> None:
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_healthcheck_entrypoint_and_cmd() -> None:
    final = _final_stage()
    healthchecks = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0] and '"python"' in healthchecks[0]
    entrypoint = [json.loads(rest) for word, rest in final if word == "ENTRYPOINT"]
    cmd = [json.loads(rest) for word, rest in final if word == "CMD"]
    assert entrypoint == [["passage"]]
    assert cmd == [["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]]


def test_dockerfile_has_no_remote_add_no_build_tools_no_keys() -> None:
    instructions = _dockerfile_instructions()
    for word, rest in instructions:
        assert not (word == "ADD" and re.match(r"(--\S+\s+)*https?://", rest)), rest
        if word in ("COPY", "ADD"):
            assert not re.search(r"(^|\s)(\./)?var(/|\s|$)", rest), rest
            assert "keys" not in rest.split()[0], rest
    final_runs = " ".join(rest for word, rest in _final_stage() if word == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install", "pip install"):
        assert tool not in final_runs, tool
    env = " ".join(rest for word, rest in _final_stage() if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "read-only root: no .pyc writes"


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "exclude everything first"
    allowed = [line[1:] for line in lines if line.startswith("!")]
    assert all(not a.startswith(("var", ".venv", ".git", "tests")) for a in allowed)
    copied = {
        source
        for word, rest in _dockerfile_instructions()
        if word == "COPY" and not rest.startswith("--")
        for source in rest.split()[:-1]
    }
    assert {"pyproject.toml", "app", "migrations", "policies", "alembic.ini"} <= copied
    for source in copied:
        assert any(
            source == a or source.startswith(a + "/") or a.startswith(source + "/") for a in allowed
        ), source


# --------------------------------------------------------------------------- systemd ---


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def _all_values(name: str, key: str) -> list[str]:
    """Every value of a repeatable key (configparser keeps only the last one)."""
    pattern = re.compile(rf"^{re.escape(key)}=(.*)$", re.M)
    return pattern.findall((SYSTEMD / name).read_text())


@pytest.mark.parametrize(
    "name",
    [
        "passage.service",
        "passage-migrate.service",
        "passage-keys-check.service",
        "passage-keys-check.timer",
    ],
)
def test_systemd_units_parse(name: str) -> None:
    unit = _unit(name)
    assert unit.has_section("Unit")
    assert unit["Unit"]["Description"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_knows_every_directive(tmp_path: Path) -> None:
    """systemd's own parser: unknown keys or sections, bad values. Missing binaries are
    expected here (the venv path does not exist on a build machine) and ignored."""
    names = [p.name for p in SYSTEMD.iterdir() if p.suffix in (".service", ".timer")]
    for name in names:
        (tmp_path / name).write_text((SYSTEMD / name).read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "is not executable" not in line
    ]
    assert not problems, problems


def test_systemd_migrate_is_a_one_shot() -> None:
    service = _unit("passage-migrate.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["RemainAfterExit"] == "yes"
    assert service["ExecStart"].endswith("passage migrate")
    assert service["User"] == "passage"
    assert "/etc/passage/migrate.env" in _all_values("passage-migrate.service", "EnvironmentFile")


def test_systemd_app_requires_migrate_and_is_hardened() -> None:
    unit = _unit("passage.service")
    assert "passage-migrate.service" in unit["Unit"]["Requires"].split()
    assert "passage-migrate.service" in unit["Unit"]["After"].split()
    service = unit["Service"]
    assert service["User"] == "passage"
    assert _all_values("passage.service", "EnvironmentFile") == ["/etc/passage/passage.env"]
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
    }
    for key, value in expected.items():
        assert service.get(key) == value, key
    assert re.fullmatch(r"\d+[KMG]", service["MemoryMax"])
    assert service["CapabilityBoundingSet"] == ""
    # Keys: a directory of files (LoadCredential would present them as 0440, which the
    # app refuses), never key material in Environment=.
    environment = " ".join(_all_values("passage.service", "Environment"))
    assert "PASSAGE_KEYS_DIR=/etc/passage/keys" in environment
    assert "LoadCredential" not in service
    # The one writable path besides PrivateTmp: the erasure journal's directory
    # (test_systemd_app_can_write_the_erasure_journal).
    assert _all_values("passage.service", "ReadWritePaths") == ["/var/lib/passage/journal"]


def test_systemd_keys_check_timer() -> None:
    service = _unit("passage-keys-check.service")["Service"]
    assert service["Type"] == "oneshot"
    assert any(
        cmd.endswith("passage audit verify")
        for cmd in _all_values("passage-keys-check.service", "ExecStart")
    )
    timer = _unit("passage-keys-check.timer")["Timer"]
    assert timer["OnCalendar"]
    assert timer["Persistent"] == "true"


# ----------------------------------------------------------------------------- nginx ---


def _nginx() -> str:
    return (DEPLOY / "nginx" / "passage.conf").read_text()


def _without_comments(conf: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in conf.splitlines())


def test_nginx_tls_hsts_body_limit() -> None:
    conf = _without_comments(_nginx())
    assert re.search(r"^\s*ssl_protocols TLSv1\.2 TLSv1\.3;", conf, re.M)
    assert not re.search(r"TLSv1(\.1)?[\s;]", conf)
    hsts = re.search(r'add_header Strict-Transport-Security "max-age=(\d+)[^"]*" always;', conf)
    assert hsts and int(hsts.group(1)) >= 31536000
    assert "proxy_hide_header Strict-Transport-Security;" in conf, "one HSTS header only"
    assert re.search(r"^\s*client_max_body_size 1m;", conf, re.M)
    assert re.search(r"^\s*server_tokens off;", conf, re.M)
    assert "return 301 https://" in conf


def test_nginx_forwarded_headers_and_login_rate_limit() -> None:
    conf = _without_comments(_nginx())
    assert re.search(r"proxy_set_header X-Forwarded-For \$\S+;", conf)
    assert re.search(r"proxy_set_header X-Forwarded-Proto (https|\$scheme);", conf)
    zone = re.search(r"limit_req_zone \S+ zone=(\w+):", conf).group(1)
    login = re.search(r"location = /api/v1/auth/login \{(.*?)\}", conf, re.S).group(1)
    assert f"limit_req zone={zone}" in login


def test_nginx_add_header_only_at_server_level() -> None:
    """A location with its own add_header silently drops the server's (HSTS included)."""
    conf = _without_comments(_nginx())
    for block in re.findall(r"location [^{]*\{([^{}]*)\}", conf):
        assert "add_header" not in block


# -------------------------------------------------------------------- erasure journal ---

POSTGRES_DATA = PurePosixPath("/var/lib/postgresql")


def _inside(path: PurePosixPath | str, directory: PurePosixPath | str) -> bool:
    path, directory = PurePosixPath(path), PurePosixPath(directory)
    return path == directory or directory in path.parents


def _assert_journal_apart(journal: PurePosixPath, keys_dir: str) -> None:
    """A journal file outside the key directory, the PostgreSQL data and /tmp."""
    assert journal.is_absolute() and journal.suffix == ".log", journal
    for forbidden in (keys_dir, POSTGRES_DATA, "/tmp"):
        assert not _inside(journal, forbidden), (journal, forbidden)
        assert not _inside(forbidden, journal.parent), (journal, forbidden)


def test_systemd_app_can_write_the_erasure_journal() -> None:
    """ProtectSystem=strict: the journal's directory must be a ReadWritePaths= entry."""
    journal = PurePosixPath(
        _read_env_file(SYSTEMD / "passage.env.example")["PASSAGE_ERASURE_JOURNAL"]
    )
    unit = _unit("passage.service")
    assert unit["Service"]["ProtectSystem"] == "strict"
    writable = [
        path.lstrip("-+")
        for value in _all_values("passage.service", "ReadWritePaths")
        for path in value.split()
    ]
    assert any(_inside(journal.parent, path) for path in writable), (journal, writable)
    # Not "-"-prefixed: a missing directory stops the unit instead of every erasure.
    assert not any(v.startswith("-") for v in _all_values("passage.service", "ReadWritePaths"))
    # Started only once the (shared) journal file system is mounted.
    assert str(journal.parent) in unit["Unit"]["RequiresMountsFor"].split()
    assert "StateDirectory" not in unit["Service"], "StateDirectory= would chown a shared mount"
    assert journal.name.startswith("erasures-"), "one file per node: erasures-<node>.log"
    _assert_journal_apart(journal, "/etc/passage/keys")


def _volume_at(service: dict[str, Any], target: str) -> dict[str, Any] | None:
    for volume in service.get("volumes", []):
        if isinstance(volume, dict) and volume.get("target") == target:
            return volume
        if isinstance(volume, str) and volume.split(":")[1:2] == [target]:
            source, _, rest = volume.partition(":")
            return {"type": "volume", "source": source, "read_only": rest.endswith(":ro")}
    return None


def test_compose_app_and_admin_can_write_the_erasure_journal(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    pgdata = services["postgres"]["volumes"][0].split(":")[0]
    journals = {}
    for name in ("app", "keys-admin"):
        service = services[name]
        env = _environment(service)
        journal = PurePosixPath(env["PASSAGE_ERASURE_JOURNAL"])
        volume = _volume_at(service, str(journal.parent))
        assert volume is not None, f"{name}: no volume at the journal's directory"
        assert volume["type"] == "volume" and volume["source"] in compose["volumes"], name
        assert volume["source"] != pgdata, "the journal must survive the database's volume"
        assert not volume.get("read_only"), name
        assert not volume.get("volume", {}).get("nocopy"), "the image's owner must be copied"
        _assert_journal_apart(journal, env["PASSAGE_KEYS_DIR"])
        journals[name] = journal
    # One directory (restore/replay/status read every *.log there), one file per writer.
    assert journals["app"].parent == journals["keys-admin"].parent
    assert journals["app"] != journals["keys-admin"]
    assert services["app"]["read_only"] is True


def test_dockerfile_creates_the_journal_mount_point_for_the_app_user() -> None:
    """A fresh named volume takes the owner and mode of the image's mount point."""
    users = [rest for word, rest in _final_stage() if word == "USER"]
    uid, _, gid = users[-1].partition(":")
    runs = " ".join(rest for word, rest in _final_stage() if word == "RUN")
    target = _environment(
        yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())["services"]["app"]
    )["PASSAGE_ERASURE_JOURNAL"]
    directory = str(PurePosixPath(target).parent)
    assert re.search(
        rf"install -d -o {uid} -g {gid or uid} -m 0700 {re.escape(directory)}(\s|$)", runs
    ), runs


# ------------------------------------------------------------------------ Kubernetes ---


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RENDERED.read_text()) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def test_values_match_schema(values: dict[str, Any]) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values, schema)


def test_chart_versions_follow_the_project(values: dict[str, Any]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]
    assert values["image"]["tag"] == project["version"]


def test_rendered_documents_validate_strictly(docs: list[dict[str, Any]]) -> None:
    assert len(docs) >= 10
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace") == NAMESPACE
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart creates no Secret"


def test_strict_validation_rejects_unknown_fields(docs: list[dict[str, Any]]) -> None:
    """Proves the validator is strict: a misspelt field must fail."""
    broken = copy.deepcopy(_one(docs, "Deployment", RELEASE))
    broken["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFs"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_every_pod_is_locked_down(docs: list[dict[str, Any]]) -> None:
    pods = _pod_specs(docs)
    assert {name for name, _ in pods} == {RELEASE, f"{RELEASE}-pgbouncer", f"{RELEASE}-migrate"}
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
        assert all("hostPath" not in v for v in pod.get("volumes", [])), name
        for container in _containers(pod):
            context = container["securityContext"]
            label = f"{name}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, label
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["runAsNonRoot"] is True, label
            assert context["capabilities"]["drop"] == ["ALL"], label
            assert "add" not in context["capabilities"], label
            assert not context.get("privileged"), label
            assert container["resources"]["limits"]["memory"], label


def test_probes(docs: list[dict[str, Any]]) -> None:
    pod = _one(docs, "Deployment", RELEASE)["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    assert app["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pgbouncer = _one(docs, "Deployment", f"{RELEASE}-pgbouncer")["spec"]["template"]["spec"]
    for container in pgbouncer["containers"]:
        assert container["readinessProbe"] and container["livenessProbe"]


def test_migration_job_is_a_helm_hook(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    job = _one(docs, "Job", f"{RELEASE}-migrate")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert {"pre-install", "pre-upgrade"} <= hooks
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["PASSAGE_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == values["secrets"]["migration"]
    assert "PASSAGE_REPORTING_DATABASE_URL" not in env
    # Hooks run before the chart's own objects exist: depend on none of them.
    assert "serviceAccountName" not in pod
    assert "envFrom" not in container


def test_only_migration_sees_owner_credentials(
    docs: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    for name, pod in _pod_specs(docs):
        for container in _containers(pod):
            refs = {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            if name != f"{RELEASE}-migrate":
                assert values["secrets"]["migration"] not in refs, name


def test_hpa_targets_the_deployment(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": RELEASE}
    assert hpa["spec"]["minReplicas"] == values["autoscaling"]["minReplicas"]
    assert hpa["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in _one(docs, "Deployment", RELEASE)["spec"], "the HPA owns replicas"


def test_pdb_selects_the_app_pods(docs: list[dict[str, Any]]) -> None:
    labels = _one(docs, "Deployment", RELEASE)["spec"]["template"]["metadata"]["labels"]
    pdb = _one(docs, "PodDisruptionBudget", RELEASE)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] >= 1


def test_keys_are_secret_volume_files_not_env(
    docs: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    keys_secret = values["secrets"]["keys"]
    deployment = _one(docs, "Deployment", RELEASE)
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == keys_secret]
    assert volume["secret"]["defaultMode"] == 0o400
    config = _one(docs, "ConfigMap", RELEASE)["data"]
    keys_dir = config["PASSAGE_KEYS_DIR"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    (mount,) = [m for m in app["volumeMounts"] if m["mountPath"] == keys_dir]
    assert mount["readOnly"] is True
    (keys_volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert keys_volume["emptyDir"]["medium"] == "Memory", "key copies stay off the node's disk"
    for name, spec in _pod_specs(docs):
        for container in _containers(spec):
            for env in container.get("env", []):
                assert not SECRETISH_NAME.search(env["name"]), (name, env["name"])
                assert not CREDENTIAL_URL.search(str(env.get("value", ""))), (name, env["name"])
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] != keys_secret, "keys must never be env vars"
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, (name, "no whole-Secret env import")
    for value in config.values():
        assert not CREDENTIAL_URL.search(value)


def test_network_policy_limits_app_egress(
    docs: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    policy = _one(docs, "NetworkPolicy", RELEASE)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "app"
    allowed_ports = {values["pgbouncer"]["port"], values["networkPolicy"]["redis"]["port"], 53}
    rules = policy["spec"]["egress"]
    assert len(rules) == 3
    for rule in rules:
        assert rule.get("to"), "an egress rule without `to` allows every destination"
        assert {p["port"] for p in rule["ports"]} <= allowed_ports
    pgbouncer_rule = rules[0]
    selector = pgbouncer_rule["to"][0]["podSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "pgbouncer"
    assert rules[1]["to"] == values["networkPolicy"]["redis"]["to"]
    assert {p["port"] for p in rules[2]["ports"]} == {53}
    # The app cannot reach PostgreSQL directly; PgBouncer and the migration Job can.
    assert values["database"]["port"] not in {p["port"] for r in rules for p in r["ports"]}
    for name in (f"{RELEASE}-pgbouncer", f"{RELEASE}-migrate"):
        egress = _one(docs, "NetworkPolicy", name)["spec"]["egress"]
        assert values["database"]["port"] in {p["port"] for r in egress for p in r["ports"]}


def _journal_pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The app Deployment and every Job/CronJob that erases, restores or reads the journal."""
    out = []
    for doc in docs:
        if doc["kind"] == "CronJob":
            pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
        else:
            continue
        commands = {c.get("args", [""])[0] for c in pod["containers"]}
        if commands & {"serve", "restore", "retention", "erasure-journal"}:
            out.append((doc["metadata"]["name"], pod))
    return out


def test_helm_app_pods_write_their_own_journal_on_the_claim(
    docs: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    journal_values = values["erasureJournal"]
    mount_path = journal_values["mountPath"]
    keys_dir = _one(docs, "ConfigMap", RELEASE)["data"]["PASSAGE_KEYS_DIR"]
    pods = _journal_pods(docs)
    assert RELEASE in {name for name, _ in pods}, "the app Deployment writes the journal"
    for name, pod in pods:
        (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"]["claimName"] == journal_values["existingClaim"]
        for container in pod["containers"]:
            env = container["env"]
            names = [e["name"] for e in env]
            journal = PurePosixPath(
                next(e["value"] for e in env if e["name"] == "PASSAGE_ERASURE_JOURNAL")
            )
            # One file per pod: $(POD_NAME), from the downward API, declared before use.
            assert "$(POD_NAME)" in journal.name, (name, journal)
            pod_name = env[names.index("POD_NAME")]
            assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            assert names.index("POD_NAME") < names.index("PASSAGE_ERASURE_JOURNAL")
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
            assert mount["mountPath"] == str(journal.parent) == mount_path, name
            assert not mount.get("readOnly") and "subPath" not in mount, name
            _assert_journal_apart(journal, keys_dir)
    # The claim is a durable PVC (never an emptyDir) and is not created by the chart, so
    # `helm uninstall` cannot delete it.
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert "ReadWriteMany" in (CHART / "values.yaml").read_text()


def test_helm_init_container_probes_the_journal_claim(docs: list[dict[str, Any]]) -> None:
    pod = _one(docs, "Deployment", RELEASE)["spec"]["template"]["spec"]
    (check,) = [c for c in pod["initContainers"] if c["name"] == "check-erasure-journal"]
    (mount,) = check["volumeMounts"]
    assert mount["name"] == "erasure-journal" and not mount.get("readOnly")
    assert f"touch {mount['mountPath']}/" in check["args"][0]
    assert not check["args"][0].rstrip().endswith(".log"), "the probe is not a journal file"


def test_reporting_replica_only_for_the_app(
    docs: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    pod = _one(docs, "Deployment", RELEASE)["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    env = {e["name"]: e for e in app["env"]}
    ref = env["PASSAGE_REPORTING_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": values["secrets"]["app"], "key": "reporting-database-url"}
    ini = _one(docs, "ConfigMap", f"{RELEASE}-pgbouncer")["data"]["pgbouncer.ini"]
    assert f"passage_reporting = host={values['reporting']['host']} " in ini


def test_images_match_values(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    image = values["image"]
    expected = (
        f"{image['repository']}@{image['digest']}"
        if image["digest"]
        else f"{image['repository']}:{image['tag']}"
    )
    pgbouncer_image = values["pgbouncer"]["image"]
    expected_pgbouncer = f"{pgbouncer_image['repository']}:{pgbouncer_image['tag']}"
    for name, pod in _pod_specs(docs):
        for container in _containers(pod):
            want = expected_pgbouncer if container["name"] == "pgbouncer" else expected
            assert container["image"] == want, (name, container["name"])


def test_pool_arithmetic_helm(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    capacity = values["capacity"]
    per_worker = capacity["sqlalchemyPoolSize"] + capacity["sqlalchemyMaxOverflow"]
    assert per_worker == _sqlalchemy_pool_max(), "values.capacity mirrors app/db/engine.py"
    pgbouncer = values["pgbouncer"]
    worst_case = values["autoscaling"]["maxReplicas"] * values["app"]["workers"] * per_worker
    assert worst_case <= pgbouncer["maxClientConn"], "one PgBouncer pod may get every client"
    assert (
        pgbouncer["defaultPoolSize"] + pgbouncer["reservePoolSize"] <= pgbouncer["maxDbConnections"]
    )
    # PostgreSQL's default max_connections is 100; keep 10 for superusers, migrations, backups.
    assert pgbouncer["replicas"] * pgbouncer["maxDbConnections"] <= 90
    cpu = values["app"]["resources"]["requests"]["cpu"]
    cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert values["app"]["workers"] == int(2 * cores), "uvicorn workers = 2 x cores"


def test_rendered_pgbouncer_ini_matches_repository_ini(docs: list[dict[str, Any]]) -> None:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    parser.read_string(_one(docs, "ConfigMap", f"{RELEASE}-pgbouncer")["data"]["pgbouncer.ini"])
    rendered = dict(parser["pgbouncer"])
    repository = _pgbouncer_ini()
    # Only TLS to the server differs: across a cluster network it is required.
    assert rendered.pop("server_tls_sslmode") == "require"
    repository.pop("server_tls_sslmode")
    assert rendered == repository


# ----------------------------------------- rendered.yaml vs the Helm templates (no helm) ---


TEMPLATES = sorted(
    p for p in (CHART / "templates").iterdir() if p.suffix == ".yaml" and p.is_file()
)


def _sections() -> dict[str, list[str]]:
    """rendered.yaml lines grouped by their `# Source: passage/templates/<file>` header."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in RENDERED.read_text().splitlines():
        if line == "---":
            current = None
            continue
        match = re.fullmatch(r"# Source: passage/templates/(\S+)", line)
        if match:
            current = match.group(1)
            sections.setdefault(current, [])
            continue
        if current is not None:
            sections[current].append(line)
    return sections


def _section_text(source: str) -> str:
    """One rendered document's text, as Helm's `include` of that template returns it."""
    return "\n".join(_sections()[source]) + "\n"


def _lookup(values: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = values
    for part in dotted.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _go_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _simple_action(action: str, values: dict[str, Any]) -> str | None:
    """Value of a `{{ ... }}` action this checker understands, else None."""
    action = action.strip()
    quote = False
    if action.endswith("| quote"):
        action, quote = action[: -len("| quote")].strip(), True
    image = values["image"]
    helpers = {
        ".Release.Name": RELEASE,
        ".Release.Namespace": NAMESPACE,
        # Release "passage" contains the chart name, so fullname is the release name.
        'include "passage.fullname" .': RELEASE,
        'include "passage.serviceAccountName" .': values["serviceAccount"]["name"] or RELEASE,
        'include "passage.image" .': (
            f"{image['repository']}@{image['digest']}"
            if image["digest"]
            else f"{image['repository']}:{image['tag']}"
        ),
    }
    if action in helpers:
        result = helpers[action]
    elif re.fullmatch(r"\.Values(\.[A-Za-z0-9_]+)+", action):
        found, value = _lookup(values, action[len(".Values") :])
        if not found or isinstance(value, dict | list):
            return None
        result = _go_string(value)
    else:
        return None
    return json.dumps(result) if quote else result


def _condition(expr: str, values: dict[str, Any]) -> str:
    """'on' / 'off' / 'unknown' for the `if` and `with` forms used in the chart."""
    negate = expr.startswith("not ")
    expr = expr.removeprefix("not ").strip()
    if not re.fullmatch(r"\.Values(\.[A-Za-z0-9_]+)+", expr):
        return "unknown"
    _, value = _lookup(values, expr[len(".Values") :])
    return "on" if bool(value) != negate else "off"


def _expected_lines(template: str, values: dict[str, Any]) -> list[str]:
    """Template lines whose rendering this checker can predict, in order."""
    block = re.compile(r"\{\{-?\s*(if|with|range|else|end|define)\b(.*?)\s*-?\}\}")
    action = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
    stack: list[str] = []
    expected: list[str] = []
    for raw in template.splitlines():
        stripped = raw.strip()
        match = block.fullmatch(stripped)
        if match:
            word, argument = match.group(1), match.group(2).strip()
            if word == "end":
                stack.pop()
            elif word == "else":
                flip = {"on": "off", "off": "on"}
                stack[-1] = "unknown" if argument else flip.get(stack[-1], "unknown")
            elif word == "if":
                stack.append(_condition(argument, values))
            elif word == "with":
                # Falsy -> skipped; truthy -> content depends on `.`, not predictable.
                stack.append("off" if _condition(argument, values) == "off" else "unknown")
            else:
                stack.append("off" if word == "define" else "unknown")
            continue
        if "off" in stack or "unknown" in stack or not stripped or stripped == "---":
            continue
        line = raw.rstrip()
        resolvable = True

        def substitute(m: re.Match[str]) -> str:
            nonlocal resolvable
            result = _simple_action(m.group(1), values)
            if result is None:
                resolvable = False
                return ""
            return result

        line = action.sub(substitute, line)
        if resolvable:
            expected.append(line)
    assert not stack, "unbalanced template blocks"
    return expected


def test_every_template_is_rendered() -> None:
    sections = _sections()
    names = {p.name for p in TEMPLATES}
    assert set(sections) == names, "rendered.yaml and templates/ list different files"


def test_rendered_kinds_match_templates() -> None:
    sections = _sections()
    for template in TEMPLATES:
        declared = re.findall(r"^kind:\s*(\S+)$", template.read_text(), re.M)
        rendered = re.findall(r"^kind:\s*(\S+)$", "\n".join(sections[template.name]), re.M)
        assert sorted(declared) == sorted(rendered), template.name


def test_templates_reference_existing_values(values: dict[str, Any]) -> None:
    for template in [*TEMPLATES, CHART / "templates" / "_helpers.tpl"]:
        for ref in re.findall(r"\.Values((?:\.[A-Za-z0-9_]+)+)", template.read_text()):
            found, _ = _lookup(values, ref)
            assert found, f"{template.name}: .Values{ref} is not in values.yaml"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_rendered_lines_follow_template(template: Path, values: dict[str, Any]) -> None:
    rendered = iter(line.rstrip() for line in _sections()[template.name])
    for line in _expected_lines(template.read_text(), values):
        assert any(candidate == line for candidate in rendered), (
            f"{template.name}: rendered.yaml lacks (or misorders) the line {line!r}"
        )


@pytest.mark.parametrize(
    ("deployment", "configmap"),
    [(RELEASE, "configmap.yaml"), (f"{RELEASE}-pgbouncer", "pgbouncer-configmap.yaml")],
)
def test_config_checksums(docs: list[dict[str, Any]], deployment: str, configmap: str) -> None:
    annotations = _one(docs, "Deployment", deployment)["spec"]["template"]["metadata"][
        "annotations"
    ]
    digest = hashlib.sha256(_section_text(configmap).encode()).hexdigest()
    assert annotations["checksum/config"] == digest, (
        f"update the checksum after editing {configmap}"
    )
