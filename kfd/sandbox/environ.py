"""The environment commands get: an allow-list, never the daemon's secrets.

A command sees the variables named in `PASSED` (the session basics and the
tool-chain variables builds read), the proxies unless they carry a
password, and what ``[sandbox] env`` adds (names or ``fnmatch`` globs).
Everything else is withheld, whatever its name: ``DATABASE_URL`` and
``MYSQL_PWD`` as much as ``OPENAI_API_KEY``. kfd redacts the withheld
values that could be secrets (`kfd.redact`), so a command that learns one
elsewhere still cannot get it stored.

Inside the sandbox, the tool-chains' caches and per-user directories point
into the project's writable cache home (`cache_variables`), so package
managers work while ``$HOME`` stays read-only.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Collection, Mapping

PASSED = frozenset(
    {
        # the session
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TERM",
        "COLORTERM",
        "TZ",
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "CI",
        # who commits
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        # tool-chains: where they are and how they build
        "JAVA_HOME",
        "GOROOT",
        "GOTOOLCHAIN",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "PYENV_ROOT",
        "PYENV_VERSION",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "NVM_DIR",
        "NVM_BIN",
        "NODE_PATH",
        "NODE_OPTIONS",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PKG_CONFIG_PATH",
        "LD_LIBRARY_PATH",
        "LIBRARY_PATH",
        "CPATH",
        "C_INCLUDE_PATH",
        "CPLUS_INCLUDE_PATH",
        "CC",
        "CXX",
        "CFLAGS",
        "CXXFLAGS",
        "CPPFLAGS",
        "LDFLAGS",
        "MAKEFLAGS",
        # certificates of the local trust store
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    }
)
"""Variables commands get from the daemon's environment."""

PASSED_PATTERNS = ("LC_*",)

PROXIES = frozenset(
    {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
)
"""Passed unless the value carries credentials (``user:pass@``); ``[sandbox] env`` can pass it."""

SANDBOX_TMPDIR = "/tmp"

CACHE_BIN_DIRS = ("python/bin", "cargo/bin", "go/bin", "npm-global/bin")
"""Where tools installed into the cache home put programs (appended to ``PATH``)."""


def allowed(name: str, value: str, extra: Collection[str] = ()) -> bool:
    """Whether a command gets the variable ``name`` (with ``value``)."""
    verdict = _by_name(name, tuple(extra))
    return "@" not in value if verdict is None else verdict


@functools.lru_cache(maxsize=2048)
def _by_name(name: str, extra: tuple[str, ...]) -> bool | None:
    """`allowed` by the name alone; None for a proxy, which depends on its value.
    Remembered: the daemon's environment is the same for every command."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in extra):
        return True
    if name in PROXIES:
        return None
    return name in PASSED or any(fnmatch.fnmatchcase(name, p) for p in PASSED_PATTERNS)


def command_environment(
    environ: Mapping[str, str],
    extra: Collection[str] = (),
    *,
    cache_home: str | None = None,
) -> dict[str, str]:
    """What a command gets: the allowed variables; with ``cache_home`` (a sandboxed
    command) also ``TMPDIR`` and the tool-chains' cache locations."""
    extra = tuple(extra)
    env = {name: value for name, value in environ.items() if allowed(name, value, extra)}
    _protect_git(env)
    if cache_home is not None:
        env["TMPDIR"] = SANDBOX_TMPDIR
        # The workspace is a mount point of its own: let git find a repository above it.
        env["GIT_DISCOVERY_ACROSS_FILESYSTEM"] = "1"
        env.update(cache_variables(cache_home))
        bins = os.pathsep.join(os.path.join(cache_home, part) for part in CACHE_BIN_DIRS)
        env["PATH"] = f"{env['PATH']}{os.pathsep}{bins}" if env.get("PATH") else bins
    return env


GIT_PROTECTED = (("safe.bareRepository", "explicit"),)
"""Git settings every command gets, as git's command-line scope (which a repository's
own configuration cannot override): a repository may commit a directory laid out
as a bare repository (``HEAD``, ``config``, ``objects/``, ``refs/``) whose config
names programs (``core.fsmonitor``); git would use it for any command run in it
(``git -C vendor/x status``, allowed as read-only) were it not told to use bare
repositories only when named (``--git-dir``)."""


def _protect_git(env: dict[str, str]) -> None:
    """`GIT_PROTECTED` added to ``env`` after any ``GIT_CONFIG_*`` pairs it passes."""
    try:
        count = max(0, int(env.get("GIT_CONFIG_COUNT", "0")))
    except ValueError:
        count = 0
    for key, value in GIT_PROTECTED:
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)


def withheld(environ: Mapping[str, str], extra: Collection[str] = ()) -> dict[str, str]:
    """The variables commands do not get."""
    return {name: value for name, value in environ.items() if not allowed(name, value, extra)}


def cache_variables(cache_home: str) -> dict[str, str]:
    """Tool-chain variables that put caches and per-user installs in ``cache_home``.

    Each is the tool's documented way to move its directory: npm, yarn,
    pnpm (through ``XDG_DATA_HOME``), pip and uv (through ``XDG_CACHE_HOME``),
    cargo, go, ``pip install --user`` (``PYTHONUSERBASE``), gradle, deno, bun.
    """

    def at(part: str) -> str:
        return os.path.join(cache_home, part)

    return {
        "XDG_CACHE_HOME": at("cache"),
        "XDG_DATA_HOME": at("data"),
        "XDG_STATE_HOME": at("state"),
        "npm_config_cache": at("npm"),
        "npm_config_prefix": at("npm-global"),
        "npm_config_update_notifier": "false",
        "YARN_CACHE_FOLDER": at("yarn"),
        "CARGO_HOME": at("cargo"),
        "GOPATH": at("go"),
        "GOMODCACHE": at("go/pkg/mod"),
        "GOCACHE": at("cache/go-build"),
        "PYTHONUSERBASE": at("python"),
        "GRADLE_USER_HOME": at("gradle"),
        "DENO_DIR": at("deno"),
        "BUN_INSTALL_CACHE_DIR": at("bun"),
    }
