"""uvicorn's own WebSocket protocol tests, run against sysstream's protocol class.

Usage (from the repository root)::

    .venv/bin/python scripts/conformance.py            # every uvicorn release the pin allows
    .venv/bin/python scripts/conformance.py 0.55.0     # one release

For each release: a venv of its own under ``.conformance/`` (not committed) with sysstream
and that uvicorn; the release's sdist fetched from the package index (``tests/`` ships in it,
never in this repository); then its ``tests/protocols/test_websocket.py`` with the protocol
fixture widened to ``[uvicorn's WebSocketsSansIOProtocol, sysstream:WebSocketProtocol]``.
Where the suite skips by class *name*, the skip is made to match subclasses. Exits non-zero
when any test fails on either class.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".conformance"
# One per uvicorn minor release that pyproject.toml allows (tests/test_seam.py checks).
RELEASES = ("0.54.0", "0.55.0")
SUITE = "tests/protocols/test_websocket.py"
# What the suite needs besides uvicorn[standard]; hatchling builds the sdist's metadata.
TEST_PACKAGES = ("pytest", "pytest-mock", "httpx2", "wsproto", "hatchling")
NAME_CHECK = 'ws_protocol_cls.__name__ == "WebSocketsSansIOProtocol"'
SUBCLASS_CHECK = "issubclass(ws_protocol_cls, WebSocketsSansIOProtocol)"

FIXTURES = '''"""Written by sysstream's scripts/conformance.py: both protocol classes."""

import pytest
from uvicorn.importer import import_from_string


@pytest.fixture(
    params=[
        pytest.param(
            "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
            id="uvicorn-sansio",
        ),
        pytest.param("sysstream:WebSocketProtocol", id="sysstream"),
    ]
)
def ws_protocol_cls(request):
    return import_from_string(request.param)


@pytest.fixture(
    params=[
        pytest.param("uvicorn.protocols.http.httptools_impl:HttpToolsProtocol", id="httptools"),
        pytest.param("uvicorn.protocols.http.h11_impl:H11Protocol", id="h11"),
    ]
)
def http_protocol_cls(request):
    return import_from_string(request.param)
'''

PYTEST_INI = """[pytest]
addopts = -rxXs --strict-config --strict-markers -p no:cacheprovider
faulthandler_timeout = 60
xfail_strict = true
filterwarnings = error
"""


def run(*command: str | Path, cwd: Path = ROOT) -> None:
    subprocess.run([str(part) for part in command], cwd=cwd, check=True)


def prepare(release: str) -> tuple[Path, Path]:
    """The release's venv and its unpacked test suite, patched to run both classes."""
    venv = WORK / f"venv-{release}"
    python = venv / "bin" / "python"
    if not python.exists():
        run(sys.executable, "-m", "venv", venv)
    pip = (python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    run(*pip, "-e", ".", f"uvicorn[standard]=={release}", *TEST_PACKAGES)
    source = WORK / f"sdist-{release}"
    archive = source / f"uvicorn-{release}.tar.gz"
    if not archive.exists():
        source.mkdir(parents=True, exist_ok=True)
        run(
            python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
            f"uvicorn=={release}", "-d", source,
        )  # fmt: skip
    suite = WORK / f"suite-{release}"
    if suite.exists():
        subprocess.run(["rm", "-rf", str(suite)], check=True)
    suite.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"uvicorn-{release}/tests/")]
        tar.extractall(suite, members=members, filter="data")
    tests = suite / f"uvicorn-{release}"
    (tests / "pytest.ini").write_text(PYTEST_INI)
    (tests / "tests" / "protocols" / "conftest.py").write_text(FIXTURES)
    test_file = tests / SUITE
    test_file.write_text(test_file.read_text().replace(NAME_CHECK, SUBCLASS_CHECK))
    return python, tests


def main(releases: list[str]) -> int:
    failed = []
    for release in releases or RELEASES:
        python, tests = prepare(release)
        print(f"uvicorn {release}: {SUITE} with sysstream:WebSocketProtocol", flush=True)
        outcome = subprocess.run([str(python), "-m", "pytest", "-q", SUITE], cwd=tests)
        if outcome.returncode:
            failed.append(release)
    if failed:
        print(f"conformance failed for uvicorn {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
