"""Tool-chains work in the sandbox with the network off: their caches live in the
project's cache home. Each runs where its tool is installed, and says so when not."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd_shell import BashTool

pytestmark = needs_bubblewrap


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $XDG_CACHE_HOME: the cache homes of these tests start empty."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory))
    return directory


async def run(repo: Path, command: str, **args: Any) -> str:
    ctx = CallContext(session_id="s", workspace=repo, sandbox=Sandbox())
    result = await BashTool().run(BashTool.Args(command=command, timeout=300, **args), ctx)
    return result.output


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _npm_pack(source: Path) -> Path:
    subprocess.run(["npm", "pack", "--silent"], cwd=source, check=True, capture_output=True)
    return next(source.glob("*.tgz"))


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
async def test_npm_installs_from_its_cache_with_the_network_off(repo: Path, tmp_path: Path) -> None:
    source = tmp_path / "left-pad"
    source.mkdir()
    (source / "package.json").write_text('{"name": "kfd-left-pad", "version": "1.0.0"}')
    (source / "index.js").write_text("module.exports = (s, n) => String(s).padStart(n, '*');\n")
    tarball = _npm_pack(source)
    shutil.copy(tarball, repo / "left-pad.tgz")
    (repo / "package.json").write_text(
        json.dumps({"name": "app", "version": "1.0.0", "dependencies": {"kfd-left-pad": "1.0.0"}})
    )
    lock = {
        "name": "app",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {
            "": {"name": "app", "version": "1.0.0", "dependencies": {"kfd-left-pad": "1.0.0"}},
            "node_modules/kfd-left-pad": {
                "version": "1.0.0",
                # Never reached: the network is off and the cache has it.
                "resolved": "http://127.0.0.1:9/kfd-left-pad/-/kfd-left-pad-1.0.0.tgz",
                "integrity": _integrity(tarball.read_bytes()),
            },
        },
    }
    (repo / "package-lock.json").write_text(json.dumps(lock))
    # One command fills the cache; later ones install from it.
    added = await run(repo, "npm cache add ./left-pad.tgz && echo cached")
    assert "cached\n" in added, added
    for _ in range(2):
        output = await run(
            repo,
            "rm -rf node_modules && npm ci --offline --no-audit --no-fund && "
            "node -e \"console.log(require('kfd-left-pad')('x', 3))\"",
        )
        assert "**x\n" in output, output


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
async def test_cargo_builds_with_the_network_off(repo: Path) -> None:
    crate = repo / "hello"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    (crate / "src" / "main.rs").write_text('fn main() { println!("built in the sandbox"); }\n')
    output = await run(repo, "cd hello && cargo build --offline -q && ./target/debug/hello")
    assert "built in the sandbox\n" in output, output


def _wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel, built by hand (no build backend, no network)."""
    files = {
        "kfdwheel/__init__.py": b"VALUE = 42\n",
        "kfdwheel-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: kfdwheel\nVersion: 1.0\n",
        "kfdwheel-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: kfd-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    path = directory / "kfdwheel-1.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append("kfdwheel-1.0.dist-info/RECORD,,")
        archive.writestr("kfdwheel-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def _python_with_pip() -> str | None:
    """A Python outside any virtualenv (``--user`` needs one) that has pip."""
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found is None or found.startswith("/tmp/"):
            continue
        probe = "import sys, pip; print(sys.prefix == sys.base_prefix)"
        said = subprocess.run([found, "-c", probe], capture_output=True, text=True)
        if said.stdout.strip() == "True":
            return found
    return None


PYTHON_WITH_PIP = _python_with_pip()
SANDBOX_SEES_VENV = not sys.executable.startswith("/tmp/")  # the sandbox's /tmp is its own


@pytest.mark.skipif(PYTHON_WITH_PIP is None, reason="no Python outside a virtualenv has pip")
async def test_pip_install_user_goes_to_the_cache_home(repo: Path, cache: Path) -> None:
    wheel = _wheel(repo)
    python = PYTHON_WITH_PIP
    output = await run(
        repo,
        f"{python} -m pip install -q --user --no-index --disable-pip-version-check "
        f"--break-system-packages {wheel.name} 2>&1 | grep -v WARNING; "
        f"{python} -c 'import kfdwheel; print(kfdwheel.VALUE)'",
    )
    assert "42\n" in output, output
    assert list(cache.glob("kfd/sandbox/*/python/lib/python*/site-packages/kfdwheel"))


@pytest.mark.skipif(not SANDBOX_SEES_VENV, reason="the test virtualenv lies under /tmp")
async def test_pytest_runs_in_the_sandbox(repo: Path) -> None:
    (repo / "test_sample.py").write_text("def test_sum():\n    assert 1 + 1 == 2\n")
    output = await run(repo, f"{sys.executable} -m pytest -q test_sample.py 2>&1 | tail -1")
    assert "1 passed" in output, output
