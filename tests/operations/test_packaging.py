"""The wheel is self-sufficient: it carries alembic.ini, migrations, policies and the frontend.

The wheel is built from a copy of the files a release holds (as a clean checkout or the
Docker build context would: no var/, no keys, no caches), then installed with --no-deps
--no-index into a throwaway virtualenv that borrows the dependencies of the test
environment, and used from a directory that is not the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from app.config import REPO_ROOT

pytestmark = pytest.mark.slow

# What a release holds (the Docker build context's allow-list, deploy/docker/Dockerfile.dockerignore).
RELEASE = ["pyproject.toml", "README.md", "alembic.ini", "app", "migrations", "policies"]
FRONTEND = ["static", "templates"]
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")
# Files under app/ that only serve development (translation sources, notes): every other
# file there is read at run time and must be in the wheel.
SOURCE_ONLY = {".po", ".pot", ".md"}


def _source_files(tree: Path) -> dict[str, Path]:
    """Every runtime file of a release tree -> where the wheel must hold it."""
    wanted: dict[str, Path] = {}
    for path in (tree / "app").rglob("*"):
        if path.is_file() and path.suffix not in SOURCE_ONLY:
            wanted[path.relative_to(tree).as_posix()] = path
    bundled = [tree / "alembic.ini"]
    for folder in ("migrations", "policies", "frontend/static", "frontend/templates"):
        bundled += [p for p in (tree / folder).rglob("*") if p.is_file()]
    for path in bundled:
        wanted["app/_bundle/" + path.relative_to(tree).as_posix()] = path
    return wanted


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("release") / "passage"
    tree.mkdir()
    for name in RELEASE:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=JUNK)
        else:
            shutil.copy2(source, tree / name)
    for name in FRONTEND:
        if (REPO_ROOT / "frontend" / name).is_dir():
            shutil.copytree(REPO_ROOT / "frontend" / name, tree / "frontend" / name, ignore=JUNK)
    return tree


@pytest.fixture(scope="module")
def wheel(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(release)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("passage-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway virtualenv holding only the wheel; dependencies come from the test venv."""
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Appended after the venv's own site-packages; its .pth files (our editable install) are
    # not processed, so `app` can only come from the wheel.
    Path(purelib, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def _run(venv: Path, script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PASSAGE_", "PYTHON"))}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", textwrap.dedent(script)],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_wheel_holds_every_runtime_file_and_nothing_secret(release: Path, wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(set(_source_files(release)) - names)
    assert not missing, (
        "missing from the wheel (a new app/ subpackage or data directory must be listed "
        f"in pyproject.toml [tool.setuptools]): {missing}"
    )
    for name in names:
        assert not name.startswith(("var/", "tests/", "frontend/", "migrations/", "policies/")), (
            name
        )
        assert "node_modules" not in name and "__pycache__" not in name, name
        assert not name.endswith((".key", ".pem", ".pyc", "keyring.json", ".db")), name
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {
        "app",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }


def test_the_installed_wheel_carries_its_files_and_policies_load_from_the_package(
    venv: Path, tmp_path: Path
) -> None:
    result = _run(
        venv,
        """
        import importlib.resources
        from pathlib import Path

        import app
        assert "/site-packages/app/" in app.__file__, app.__file__
        bundle = Path(str(importlib.resources.files("app") / "_bundle"))
        for name in ("alembic.ini", "migrations/env.py", "migrations/script.py.mako",
                     "policies/roles.toml", "policies/retention.toml",
                     "frontend/static/manifest.json"):
            assert (bundle / name).is_file(), name


        import tomllib
        for toml in sorted((bundle / "policies").rglob("*.toml")):
            tomllib.loads(toml.read_text())
        # Loaders that do not import the workflow (which reads transitions.toml at import).
        from app.policies.countries import load_country_profiles
        assert "coe_default" in load_country_profiles(bundle / "policies" / "countries")
        from app.auth.passwords import password_problems  # reads common_passwords.txt
        assert password_problems("123456789012")
        print("self-sufficient")
        """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "self-sufficient" in result.stdout


def test_the_installed_app_finds_its_files_without_the_repository(
    venv: Path, tmp_path: Path
) -> None:
    result = _run(
        venv,
        """
        from app.config import REPO_ROOT, get_settings
        assert (REPO_ROOT / "alembic.ini").is_file(), REPO_ROOT
        assert (get_settings().policies_dir / "roles.toml").is_file()
        import app.cases.workflow
        from app.authz.policy import load_access_policy
        from app.policies.retention import load_retention_policy
        load_access_policy(get_settings().policies_dir)
        load_retention_policy(get_settings().policies_dir / "retention.toml")
        print("found")
        """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    migrated = subprocess.run(
        [str(venv / "bin" / "passage"), "migrate"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")},
            "PASSAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    import sqlite3

    with sqlite3.connect(tmp_path / "cli.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"cases", "victims", "audit_events", "data_keys", "alembic_version"} <= tables
