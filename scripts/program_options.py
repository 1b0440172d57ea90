#!/usr/bin/env python3
"""Write kfd's option tables from the programs' own help texts.

    .venv/bin/python scripts/program_options.py            # rewrite every table
    .venv/bin/python scripts/program_options.py --check    # exit 1 if a table is stale

The permission engine normalises options before it matches a rule (``rm -R
--force`` is ``rm -rf``), so it must know each option's spellings and whether
it takes a value. No maintained machine-readable source covers GNU, git, curl,
docker, kubectl and npm alike (fish, zsh and bash-completion specs are shell
code of uneven coverage; tldr pages are examples), so the source is each
program's own ``--help``: the tables below are what the installed programs
say, and `tests/unit/test_program_knowledge.py` fails when an installed
program has an option its table lacks. What options *mean* (which ones
recurse, write, run programs) is written by hand in ``meaning.toml``.

Only help output is read: nothing here runs a program's real work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "kfd" / "policy" / "programs" / "data"

GNU = {
    # coreutils and friends that rules are written about, or that read trees or write files
    "coreutils": [
        "rm",
        "cp",
        "mv",
        "ln",
        "chmod",
        "chown",
        "chgrp",
        "touch",
        "mkdir",
        "rmdir",
        "tee",
        "ls",
        "cat",
        "head",
        "tail",
        "wc",
        "stat",
        "du",
        "sort",
        "uniq",
        "cut",
        "tr",
        "readlink",
        "realpath",
        "basename",
        "dirname",
        "shred",
        "truncate",
        "install",
        "split",
        "csplit",
        "md5sum",
        "sha1sum",
        "sha256sum",
        "sha512sum",
        "b2sum",
        "cksum",
        "nl",
        "od",
        "base64",
        "base32",
        "tac",
        "paste",
        "join",
        "comm",
        "fold",
        "fmt",
        "expand",
        "unexpand",
        "pr",
        "printenv",
        "date",
        "env",
        "timeout",
        "nice",
        "nohup",
        "stdbuf",
        "chroot",
        "dd",
        "sync",
        "mktemp",
        "seq",
        "sleep",
        "id",
        "whoami",
        "uname",
        "pwd",
        "df",
        "numfmt",
        "factor",
        "tsort",
        "ptx",
        "dircolors",
        "pathchk",
        "link",
        "unlink",
        "mkfifo",
        "mknod",
    ],
    "tools": [
        "sed",
        "grep",
        "egrep",
        "fgrep",
        "tar",
        "xargs",
        "diff",
        "cmp",
        "file",
        "gzip",
        "gunzip",
        "zcat",
        "bzip2",
        "xz",
        "patch",
        "less",
        "gawk",
    ],
    "util-linux": [
        "setsid",
        "ionice",
        "unshare",
        "setpriv",
        "prlimit",
        "taskset",
        "chrt",
        "flock",
        "script",
        "nsenter",
        "runuser",
        "su",
        "setarch",
        "lscpu",
        "kill",
        "logger",
    ],
    "net": ["wget"],
}

_HEAD = re.compile(r"^\s{1,10}(-\S.*?)(?:\s{2,}|\t|$)")
_SPELLING = re.compile(r"(--?[A-Za-z0-9?@#][A-Za-z0-9_.+-]*)(.*)")


def _run(argv: list[str], cwd: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBE", "DOCKER"))}
    env.update(LC_ALL="C", LANG="C", COLUMNS="200", NO_COLOR="1", HOME=cwd, PAGER="cat")
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + "\n" + done.stderr


def option_lines(help_text: str) -> list[str]:
    """The option lines (``"-t --target-directory ="``) of a GNU, util-linux, curl,
    wget, git or docker help text."""
    lines: dict[tuple[str, ...], str] = {}
    for raw in help_text.splitlines():
        raw = re.sub(r"(?<=\S),\s+(?=-)", ", ", raw.replace("\t", "        "))
        match = _HEAD.match(raw)
        if match is None:
            continue
        parsed = _head(match.group(1))
        if parsed is not None and parsed[0] not in lines:
            lines[parsed[0]] = _line(*parsed)
    return list(lines.values())


def _head(head: str) -> tuple[tuple[str, ...], str] | None:
    """(spellings, arity) of an option head such as ``-t, --target-directory=DIR``."""
    spellings: list[str] = []
    arity = ""
    for piece in re.split(r",\s*|\s*\|\s*", head):
        piece = piece.strip()
        if not piece.startswith("-"):
            break
        match = _SPELLING.match(piece)
        if match is None:
            return None
        spelling, rest = match.groups()
        if spelling.startswith("--[no-]"):
            spelling = "--" + spelling[7:]
        spellings.append(spelling.rstrip("."))
        rest = rest.strip()
        if rest.startswith("[") and not rest.startswith("[-"):
            arity = "=?"  # --interactive[=WHEN], --force-with-lease[=<ref>]
        elif rest:
            arity = "="  # --target-directory=DIR, -k DURATION, --data <data>, --host string
    # `-NUM` (grep, head) is a number option, marked `numeric` in meaning.toml.
    spellings = [
        s
        for s in spellings
        if s not in ("-", "--") and not s.startswith("--[") and not (len(s) > 2 and s[1:].isupper())
    ]
    if not spellings:
        return None
    return tuple(spellings), arity


def _line(spellings: Iterable[str], arity: str) -> str:
    return " ".join([*spellings, *([arity] if arity else [])])


def gnu_tables() -> dict[str, Any]:
    tables: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for family, programs in GNU.items():
            for program in programs:
                path = shutil.which(program)
                if path is None:
                    continue
                text = _run([path, "--help"], cwd)
                version = _run([path, "--version"], cwd).strip().splitlines()[:1]
                options = option_lines(text)
                if not options:
                    continue
                source = f"{version[0] if version else program} --help ({family})"
                tables[program] = {"source": source, "options": options}
        curl = shutil.which("curl")
        if curl:
            version = _run([curl, "--version"], "/").split("\n", 1)[0].split(" (")[0]
            tables["curl"] = {
                "source": f"{version} --help all",
                "options": option_lines(_run([curl, "--help", "all"], "/")),
            }
    return tables


GIT_NESTED = {
    "stash": [
        "list",
        "show",
        "drop",
        "pop",
        "apply",
        "branch",
        "push",
        "save",
        "clear",
        "create",
        "store",
    ],
    "remote": [
        "add",
        "rename",
        "remove",
        "set-head",
        "set-branches",
        "get-url",
        "set-url",
        "show",
        "prune",
        "update",
    ],
    "worktree": ["add", "list", "lock", "move", "prune", "remove", "repair", "unlock"],
    "notes": [
        "list",
        "add",
        "copy",
        "append",
        "edit",
        "show",
        "merge",
        "remove",
        "prune",
        "get-ref",
    ],
    "reflog": ["show", "expire", "delete", "exists"],
    "sparse-checkout": ["init", "list", "set", "add", "reapply", "disable"],
    "bundle": ["create", "verify", "list-heads", "unbundle"],
    "maintenance": ["run", "start", "stop", "register", "unregister"],
    "commit-graph": ["verify", "write"],
    "multi-pack-index": ["write", "verify", "expire", "repack"],
    "submodule": [
        "add",
        "status",
        "init",
        "deinit",
        "update",
        "set-branch",
        "set-url",
        "summary",
        "foreach",
        "sync",
        "absorbgitdirs",
    ],
    "bisect": [
        "start",
        "bad",
        "good",
        "new",
        "old",
        "terms",
        "skip",
        "reset",
        "visualize",
        "view",
        "replay",
        "log",
        "run",
    ],
    "hook": ["run"],
}


def git_tables() -> dict[str, Any]:
    git = shutil.which("git")
    if git is None:
        return {}
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as repo:
        # Outside a repository `git diff -h` prints every option; `git stash drop -h`
        # wants one.
        _run([git, "init", "-q", repo], repo)

        def help_of(*argv: str) -> list[str]:
            text = _run([git, *argv, "-h"], cwd)
            if "not a git repository" in text:
                text = _run([git, *argv, "-h"], repo)
            return option_lines(text)

        version = _run([git, "--version"], cwd).strip()
        builtins = _run([git, "--list-cmds=builtins"], cwd).split()
        commands: dict[str, Any] = {}
        for name in builtins:
            if "--" in name:
                continue  # internal helpers (`bisect--helper`)
            entry: dict[str, Any] = {"options": help_of(name)}
            nested = {}
            for sub in GIT_NESTED.get(name, ()):
                nested[sub] = {"options": help_of(name, sub)}
            if nested:
                entry["commands"] = nested
            commands[name] = entry
    return {"git": {"source": f"{version}: git <command> -h", "style": "git", "commands": commands}}


_DOCKER_SECTION = re.compile(r"^(?:Common |Management |Swarm )?Commands:\s*$")
_COMMAND_ROW = re.compile(r"^  ([a-z][a-z0-9-]*)\*?\s{2,}")


def _docker_commands(text: str) -> list[str]:
    names: list[str] = []
    inside = False
    for raw in text.splitlines():
        if _DOCKER_SECTION.match(raw):
            inside = True
            continue
        if inside and not raw.strip():
            inside = False
            continue
        match = _COMMAND_ROW.match(raw) if inside else None
        if match:
            names.append(match.group(1))
    return names


def _docker_aliases(text: str) -> list[str]:
    lines = text.splitlines()
    for index, raw in enumerate(lines):
        if raw.strip() == "Aliases:" and index + 1 < len(lines):
            return [a.strip() for a in lines[index + 1].split(",") if a.strip()]
    return []


def docker_tables() -> dict[str, Any]:
    docker = shutil.which("docker")
    if docker is None:
        return {}
    with tempfile.TemporaryDirectory() as cwd:
        top = _run([docker, "--help"], cwd)
        version = _run([docker, "--version"], cwd).strip()
        commands: dict[str, Any] = {}
        aliases: dict[str, str] = {}
        for name in _docker_commands(top):
            text = _run([docker, name, "--help"], cwd)
            entry: dict[str, Any] = {"options": option_lines(text)}
            subs = _docker_commands(text)
            if subs:
                entry["commands"] = {}
                for sub in subs:
                    sub_text = _run([docker, name, sub, "--help"], cwd)
                    entry["commands"][sub] = {"options": option_lines(sub_text)}
                    for alias in _docker_aliases(sub_text):
                        words = alias.split()[1:]
                        if words and words != [name, sub]:
                            aliases[" ".join(words)] = f"{name} {sub}"
            commands[name] = entry
    top_aliases: dict[str, str] = {}
    nested_aliases: dict[str, dict[str, str]] = {}
    for alias, target in aliases.items():
        words = alias.split()
        if len(words) == 1:
            top_aliases[alias] = target
        elif len(words) == 2 and words[0] in commands:
            nested_aliases.setdefault(words[0], {})[words[1]] = target.split()[1]
    for name, table in nested_aliases.items():
        commands[name]["aliases"] = table
    for alias in top_aliases:
        commands.pop(alias, None)
    return {
        "docker": {
            "source": f"{version}: docker <command> --help",
            "style": "pflag",
            "options": option_lines(top),
            "commands": commands,
            "aliases": top_aliases,
        }
    }


_KUBECTL_FLAG = re.compile(r"^\s+((?:-[A-Za-z], )?--[a-z0-9-]+)=(.*?):\s*$")


def _kubectl_options(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        match = _KUBECTL_FLAG.match(raw)
        if match is None:
            continue
        spellings = [s.strip() for s in match.group(1).split(",")]
        boolean = match.group(2) in ("false", "true")
        lines.append(_line(spellings, "" if boolean else "="))
    return lines


def _kubectl_commands(text: str) -> list[str]:
    names = []
    inside = False
    for raw in text.splitlines():
        if raw.rstrip().endswith("Commands:") or raw.rstrip().endswith("Commands (Beginner):"):
            inside = True
            continue
        if re.match(r"^[A-Z][A-Za-z ()]*Commands.*:\s*$", raw):
            inside = True
            continue
        if inside and raw and not raw.startswith(" "):
            inside = False
        match = re.match(r"^  ([a-z][a-z0-9-]*)\s{2,}", raw) if inside else None
        if match:
            names.append(match.group(1))
    return names


def kubectl_tables() -> dict[str, Any]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return {}
    with tempfile.TemporaryDirectory() as cwd:
        version = _run([kubectl, "version", "--client"], cwd).strip().splitlines()[:1]
        commands: dict[str, Any] = {}
        for name in dict.fromkeys(_kubectl_commands(_run([kubectl, "--help"], cwd))):
            text = _run([kubectl, name, "--help"], cwd)
            entry: dict[str, Any] = {"options": _kubectl_options(text)}
            subs = _kubectl_commands(text)
            if subs:
                entry["commands"] = {
                    sub: {"options": _kubectl_options(_run([kubectl, name, sub, "--help"], cwd))}
                    for sub in dict.fromkeys(subs)
                }
            commands[name] = entry
        options = _kubectl_options(_run([kubectl, "options"], cwd))
    return {
        "kubectl": {
            "source": f"kubectl {' '.join(version)}: kubectl <command> --help",
            "style": "pflag",
            "global_anywhere": True,
            "options": options,
            "commands": commands,
        }
    }


_NPM_COMMAND = re.compile(r"^    ([a-z][a-z0-9-]*)\s+\S")
_NPM_OPTION = re.compile(r"\[((?:-[A-Za-z]\|)?--[a-z0-9-]+(?:\|--[a-z0-9-]+)*)(?: <[^>]*>)?")


def npm_tables() -> dict[str, Any]:
    npm = shutil.which("npm")
    if npm is None:
        return {}
    with tempfile.TemporaryDirectory() as cwd:
        text = _run([npm, "-l"], cwd)
        version = _run([npm, "--version"], cwd).strip()
    commands: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    current = ""
    for raw in text.splitlines():
        match = _NPM_COMMAND.match(raw)
        if match:
            current = match.group(1)
            commands[current] = {"options": []}
            continue
        if not current:
            continue
        body = raw.strip()
        if body.startswith(("alias:", "aliases:")):
            for alias in body.split(":", 1)[1].split(","):
                if alias.strip():
                    aliases[alias.strip()] = current
            continue
        # `[-S|--save|--no-save]` lists alternatives: only the short letter and the
        # first long name are one option.
        for option in re.finditer(
            r"\[(-[A-Za-z]\|)?(--[a-z0-9-]+)((?:\|--[a-z0-9-]+)*)( <)?", body
        ):
            short, long, more, valued = option.groups()
            found = [_line([*([short[:-1]] if short else []), long], "=" if valued else "")]
            found += [_line([m], "") for m in more.split("|") if m]
            for line in found:
                if line not in commands[current]["options"]:
                    commands[current]["options"].append(line)
    return {
        "npm": {
            "source": f"npm {version}: npm -l",
            "style": "nopt",
            "commands": commands,
            "aliases": aliases,
        }
    }


TABLES = {
    "options-gnu.json": gnu_tables,
    "options-git.json": git_tables,
    "options-docker.json": docker_tables,
    "options-kubectl.json": kubectl_tables,
    "options-npm.json": npm_tables,
}


def render(tables: dict[str, Any]) -> str:
    return json.dumps(tables, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which tables are stale")
    args = parser.parse_args()
    stale = []
    for name, make in TABLES.items():
        tables = make()
        if not tables:
            print(f"{name}: skipped (the program is not installed)", file=sys.stderr)
            continue
        text = render(tables)
        path = DATA / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
            print(f"{name}: written ({len(text):,} bytes)", file=sys.stderr)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
