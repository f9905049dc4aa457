"""Vendored front-end assets: exact pins, lockfile agreement, manifest integrity, no CDN.

Standard library only. The assets are built by ``frontend/build.mjs`` (see
``frontend/README.md``); these tests check the committed result, so they need neither
Node nor ``node_modules``. One extra test re-runs ``node build.mjs --check`` when both are
present.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FRONTEND = REPO_ROOT / "frontend"
STATIC = FRONTEND / "static"
PACKAGE_JSON = FRONTEND / "package.json"
LOCKFILE = FRONTEND / "package-lock.json"
MANIFEST = STATIC / "manifest.json"

HTMX = "htmx.org"
PICO = "@picocss/pico"
LOGICAL_NAMES = {"htmx.js", "pico.css", "app.js", "passage.css"}
DEPENDENCY_FIELDS = (
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
)
# Lifecycle scripts npm runs by itself on install: none may exist (nothing is fetched or
# executed at install or run time; the build is an explicit `npm run build`).
INSTALL_HOOKS = ("preinstall", "install", "postinstall", "prepare", "prepublish", "preprepare")

EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
URL = re.compile(r"(?:https?:)?//([A-Za-z0-9.-]+\.[A-Za-z]{2,})", re.IGNORECASE)
CDN_HOST_MARKERS = (
    "cdn",  # cdn.*, cdnjs.cloudflare.com, *.bootstrapcdn.com, cdn.skypack.dev, ...
    "unpkg.com",
    "jsdelivr",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "ajax.googleapis.com",
    "code.jquery.com",
    "esm.sh",
)
SKIP_DIRS = {"node_modules", ".git", "__pycache__"}


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sri_sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def package() -> dict[str, Any]:
    data: dict[str, Any] = load_json(PACKAGE_JSON)
    return data


def manifest() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = load_json(MANIFEST)
    return data


def pinned(name: str) -> str:
    version: str = package()["dependencies"][name]
    return version


def static_file(entry: dict[str, str]) -> Path:
    rel = PurePosixPath(entry["path"])
    assert not rel.is_absolute(), entry
    assert ".." not in rel.parts, entry
    return STATIC.joinpath(*rel.parts)


def frontend_files() -> list[Path]:
    files = []
    for path in sorted(FRONTEND.rglob("*")):
        rel_parts = path.relative_to(FRONTEND).parts
        if path.is_file() and not SKIP_DIRS.intersection(rel_parts):
            files.append(path)
    return files


# --- package.json ---------------------------------------------------------------------


def test_package_json_is_private_and_pins_exact_versions() -> None:
    pkg = package()
    assert pkg.get("private") is True
    seen = {}
    for field in DEPENDENCY_FIELDS:
        for name, spec in pkg.get(field, {}).items():
            assert isinstance(spec, str), (field, name, spec)
            assert EXACT_VERSION.fullmatch(spec), (
                f"{field}.{name} = {spec!r}: pin an exact version (no ^, ~, *, x, ranges, tags)"
            )
            seen[name] = spec
    assert HTMX in seen
    assert PICO in seen


def test_pinned_major_versions() -> None:
    # htmx 2.x only: htmx 4 changed attribute inheritance. Pico 2.x.
    assert pinned(HTMX).startswith("2.0."), pinned(HTMX)
    assert pinned(PICO).startswith("2."), pinned(PICO)


def test_package_json_has_build_script_and_no_install_hooks() -> None:
    scripts = package().get("scripts", {})
    assert scripts.get("build") == "node build.mjs"
    for hook in INSTALL_HOOKS:
        assert hook not in scripts, f"install-time script {hook!r} is not allowed"


# --- package-lock.json ----------------------------------------------------------------


def test_lockfile_agrees_with_package_json() -> None:
    pkg = package()
    lock = load_json(LOCKFILE)
    assert lock.get("lockfileVersion", 0) >= 2
    packages = lock["packages"]
    root = packages[""]
    for field in DEPENDENCY_FIELDS:
        assert root.get(field, {}) == pkg.get(field, {}), f"lockfile root {field} is stale"
    for field in DEPENDENCY_FIELDS:
        for name, version in pkg.get(field, {}).items():
            entry = packages.get(f"node_modules/{name}")
            assert entry is not None, f"{name} missing from package-lock.json"
            assert entry["version"] == version, (name, entry["version"], version)
            assert str(entry.get("integrity", "")).startswith("sha512-"), name


# --- manifest.json and the built files ------------------------------------------------


def test_manifest_names_the_expected_assets() -> None:
    entries = manifest()
    assert set(entries) == LOGICAL_NAMES
    for name, entry in entries.items():
        assert set(entry) == {"path", "integrity"}, name
        assert entry["integrity"].startswith("sha384-"), name
    assert entries["htmx.js"]["path"] == f"vendor/htmx-{pinned(HTMX)}.min.js"
    assert entries["pico.css"]["path"] == f"vendor/pico-{pinned(PICO)}.min.css"
    assert entries["app.js"]["path"] == "js/app.js"
    assert entries["passage.css"]["path"] == "css/passage.css"


@pytest.mark.parametrize("name", sorted(LOGICAL_NAMES))
def test_manifest_file_exists_and_sri_matches(name: str) -> None:
    entry = manifest()[name]
    path = static_file(entry)
    assert path.is_file(), f"{path} listed in manifest.json is missing"
    assert sri_sha384(path.read_bytes()) == entry["integrity"], (
        f"{path}: sha384 differs from manifest.json; rebuild with `node build.mjs`"
    )


def test_vendored_htmx_is_the_pinned_version() -> None:
    text = static_file(manifest()["htmx.js"]).read_text(encoding="utf-8")
    found = re.findall(r'version:"([^"]+)"', text)
    assert found == [pinned(HTMX)], found


def test_vendored_pico_is_the_pinned_version() -> None:
    text = static_file(manifest()["pico.css"]).read_text(encoding="utf-8")
    header = re.search(r"Pico CSS\D*v(\d+\.\d+\.\d+)", text[:500])
    assert header is not None, "Pico CSS version banner missing"
    assert header.group(1) == pinned(PICO)


def test_vendor_dir_holds_only_current_versions() -> None:
    expected = {
        PurePosixPath(manifest()["htmx.js"]["path"]).name,
        PurePosixPath(manifest()["pico.css"]["path"]).name,
        f"htmx-{pinned(HTMX)}.LICENSE.txt",
        f"pico-{pinned(PICO)}.LICENSE.txt",
    }
    present = {p.name for p in (STATIC / "vendor").iterdir()}
    assert present == expected


@pytest.mark.parametrize(
    ("source", "logical"), [("src/app.js", "app.js"), ("src/passage.css", "passage.css")]
)
def test_static_copies_match_sources(source: str, logical: str) -> None:
    built = static_file(manifest()[logical])
    assert built.read_bytes() == (FRONTEND / source).read_bytes(), (
        f"{built} is stale: run `node build.mjs` in frontend/"
    )


def test_build_reproduces_committed_files() -> None:
    node = shutil.which("node")
    if node is None or not (FRONTEND / "node_modules" / HTMX / "package.json").is_file():
        pytest.skip("node or frontend/node_modules missing (run `npm ci` in frontend/)")
    result = subprocess.run(
        [node, "build.mjs", "--check"],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- no CDN, no eval ----------------------------------------------------------------


def test_no_cdn_urls_under_frontend() -> None:
    offenders = []
    for path in frontend_files():
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for match in URL.finditer(text):
            host = match.group(1).lower()
            if any(marker in host for marker in CDN_HOST_MARKERS):
                offenders.append(f"{path.relative_to(REPO_ROOT)}: {match.group(0)}")
    assert not offenders, "CDN references (vendor the file instead):\n" + "\n".join(offenders)


def test_cdn_detector_catches_known_cdns() -> None:
    samples = [
        "https://unpkg.com/htmx.org@2.0.4",
        "https://cdn.jsdelivr.net/npm/@picocss/pico@2/css/pico.min.css",
        "https://cdnjs.cloudflare.com/ajax/libs/htmx/2.0.0/htmx.min.js",
        "//fonts.googleapis.com/css2?family=Inter",
        "http://cdn.example.org/x.js",
    ]
    for sample in samples:
        match = URL.search(sample)
        assert match is not None, sample
        assert any(marker in match.group(1).lower() for marker in CDN_HOST_MARKERS), sample
    harmless = URL.search("http://www.w3.org/2000/svg")
    assert harmless is not None
    assert not any(marker in harmless.group(1) for marker in CDN_HOST_MARKERS)


@pytest.mark.parametrize("path", ["src/app.js", "static/js/app.js"])
def test_app_js_has_no_dynamic_code(path: str) -> None:
    text = (FRONTEND / path).read_text(encoding="utf-8")
    for forbidden in (
        r"\beval\s*\(",
        r"\bnew\s+Function\b",
        r"\bset(?:Timeout|Interval)\s*\(\s*['\"`]",
        r"\bon[a-z]+\s*=\s*['\"]",
    ):
        assert not re.search(forbidden, text), f"{path} matches {forbidden}"


def test_app_js_hardens_htmx_config() -> None:
    text = (FRONTEND / "src" / "app.js").read_text(encoding="utf-8")
    for setting in (
        "htmx.config.allowEval = false",
        "htmx.config.allowScriptTags = false",
        "htmx.config.selfRequestsOnly = true",
        "htmx.config.historyCacheSize = 0",
        "htmx.config.includeIndicatorStyles = false",
    ):
        assert setting in text, setting
    assert "htmx:configRequest" in text
    assert "X-CSRF-Token" in text
    assert 'meta[name="csrf-token"]' in text


def test_passage_css_defines_project_classes() -> None:
    text = (FRONTEND / "src" / "passage.css").read_text(encoding="utf-8")
    for selector in (
        ":focus-visible",
        ".badge-overdue",
        ".badge-due-soon",
        ".badge-met",
        ".badge-pending",
        ".badge-stage",
        ".masked",
        ".htmx-indicator",
        ".htmx-request",
        ".notice-error",
        ".notice-empty",
        ".funnel",
        "progress",
        "@media print",
    ):
        assert selector in text, selector
    assert "@import" not in text
