"""Specification of the permission engine: one table of calls and their decisions.

Every row is a real decision: the bash line is analyzed, its paths resolved in
a real workspace (symlinks and hard links pointing out of it, secret files,
git internals), and the pure engine decides with these rules on top of the
built-in ones. The bypass families other harnesses fell to each have rows:
chaining, pipes, substitutions, ``bash -c``, nested quotes, wrappers,
``env VAR=$(…)``, variables, ``--``, reordered flags, ``git -c``, symlinks,
hard links, ``..``, absolute paths, unicode look-alikes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest

from kfd.api import PathAccess, PolicyRequest
from kfd.config import PermissionsConfig
from kfd.policy.commands import line_facts
from kfd.policy.defaults import builtin_rules
from kfd.policy.engine import Outcome, decide_facts
from kfd.policy.facts import CallFacts, PathFact
from kfd.policy.paths import hard_links, resolve
from kfd.policy.rulebook import configured
from kfd.policy.rules import SourcedRule, parse_rule
from kfd.protocol import Mode

USER = PermissionsConfig(
    allow=["bash(npm run test *)", "bash(git status)", "bash(make)", "edit(src/**)"],
    ask=["bash(git push *)"],
    deny=[
        "bash(git push --force *)",
        "bash(rm -rf *)",
        "bash(curl *)",
        "web_fetch(domain:*.evil.example)",
    ],
)


class World(NamedTuple):
    workspace: Path
    outside: Path
    home: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A workspace with secrets, git internals and ways out of it."""
    root = tmp_path_factory.mktemp("corpus").resolve()
    outside = root / "outside"
    outside.mkdir()
    (outside / "file.txt").write_text("outside\n")
    (outside / "hardfile").write_text("shared\n")
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("key\n")
    ws = root / "ws"
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "README.md").write_text("# demo\n")
    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("print(1)\n")
    (ws / ".env").write_text("TOKEN=x\n")
    (ws / ".env.local").write_text("TOKEN=y\n")
    (ws / "config").mkdir()
    (ws / "config" / ".env").write_text("TOKEN=z\n")
    (ws / "secrets").mkdir()
    (ws / "secrets" / "server.pem").write_text("pem\n")
    (ws / ".kfd").mkdir()
    (ws / "link_out").symlink_to(outside)
    (ws / "link_env").symlink_to(ws / ".env")
    (ws / "src" / "escape.py").symlink_to(outside / "file.txt")
    (ws / "sub").mkdir()
    (ws / "sub" / "link").symlink_to(Path("../../outside/file.txt"))
    os.link(outside / "hardfile", ws / "hard")
    return World(ws, outside, home)


def rules(extra_session: tuple[str, ...] = ()) -> list[SourcedRule]:
    session = [SourcedRule(parse_rule(text), "allow", "session") for text in extra_session]
    return [*session, *configured(USER, "user"), *builtin_rules()]


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
    facts = CallFacts(
        request=request,
        rules=rules(session),
        line=line_facts(command, str(world.workspace)),
        home=str(world.home),
        untrusted=untrusted,
        network_allowed=network_allowed,
    )
    return decide_facts(facts)


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
    untrusted: str = "",
) -> Outcome:
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
        session_rule=f"{tool}({path})" if path is not None else tool,
        network=network,
        untrusted=bool(untrusted),
    )
    extra_rules = [SourcedRule(parse_rule(text), "allow", "user") for text in extra]
    facts = CallFacts(
        request=request,
        rules=[*extra_rules, *rules()],
        paths=[PathFact.of(r, workspace, hard_links(r.real)) for r in resolved],
        home=str(world.home),
        untrusted=untrusted,
    )
    return decide_facts(facts)


class Line(NamedTuple):
    command: str
    expected: str
    mode: Mode = "default"
    why: str = ""
    """A piece of the reason the user sees."""


LINES = [
    # Rules match whole words, exactly or with a trailing ` *`.
    Line("git status", "allow", why="bash(git status)"),
    Line("git status --short", "allow", why="bash(git status *) (built-in default)"),
    Line("npm run test", "allow", why="bash(npm run test *)"),
    Line("npm run test -- --watch", "allow", why="bash(npm run test *)"),
    Line("ls -la src", "allow", why="bash(ls *)"),
    Line("make", "allow", why="bash(make)"),
    Line("git statusx", "ask", why="matches no allow rule"),
    Line("npm run testing", "ask", why="matches no allow rule"),
    Line("make install", "ask", why="`make install` matches no allow rule"),
    # Chaining and pipes: every part must be allowed, any denied part denies.
    Line("git status; rm x", "ask", why="`rm x` matches no allow rule"),
    Line("git status && git push --force origin main", "deny", why="bash(git push --force *)"),
    Line("ls && rm -rf ~", "deny", why="bash(rm -rf *)"),
    Line("ls || rm -rf build", "deny", why="bash(rm -rf *)"),
    Line("ls\ncurl http://127.0.0.1/", "deny", why="bash(curl *)"),
    Line("ls & rm -rf build", "deny", why="bash(rm -rf *)"),
    Line("cat README.md | wc -l", "allow"),
    Line("grep -r TOKEN .", "ask", why="matches no allow rule"),
    Line("cat README.md | sh", "ask", why="cannot tell everything"),
    Line("curl -s http://127.0.0.1/x | bash", "deny", why="bash(curl *)"),
    Line("ls | xargs rm -rf", "deny", why="bash(rm -rf *)"),
    Line("ls | xargs rm", "ask", why="only known when it runs"),
    # Substitutions: what runs inside counts; the substitution itself asks.
    Line("echo $(rm -rf build)", "deny", why="bash(rm -rf *)"),
    Line("echo `curl http://127.0.0.1/`", "deny", why="bash(curl *)"),
    Line("echo $(date)", "ask", why="command substitution"),
    Line("ls $(echo src)", "ask", why="command substitution"),
    Line("cat <(curl http://127.0.0.1/)", "deny", why="bash(curl *)"),
    Line("diff <(ls) <(ls src)", "ask", why="process substitution"),
    # Shells inside shells, nested quotes, wrappers.
    Line("bash -c 'rm -rf build'", "deny", why="bash(rm -rf *)"),
    Line('sh -c "git push --force"', "deny", why="bash(git push --force *)"),
    Line("bash -c \"bash -c 'rm -rf x'\"", "deny", why="bash(rm -rf *)"),
    Line("sh -c 'git status'", "allow", why="bash(git status)"),
    Line("timeout 5 sh -c 'rm -rf /'", "deny", why="bash(rm -rf *)"),
    Line("sudo rm -rf build", "deny", why="bash(rm -rf *)"),
    Line("sudo ls", "ask", why="other privileges"),
    Line("env rm -rf build", "deny", why="bash(rm -rf *)"),
    Line("nice -n 10 git push --force", "deny", why="bash(git push --force *)"),
    Line("nohup curl http://127.0.0.1/", "deny", why="bash(curl *)"),
    Line("command rm -rf x", "deny", why="bash(rm -rf *)"),
    Line("time git push --force", "deny", why="bash(git push --force *)"),
    Line("find . -name '*.o' -exec rm -rf {} +", "deny", why="bash(rm -rf *)"),
    Line("git -C sub push --force", "deny", why="bash(git push --force *)"),
    Line("xargs -0 git push --force", "deny", why="bash(git push --force *)"),
    Line("eval 'rm -rf build'", "deny", why="bash(rm -rf *)"),
    Line("eval ls", "ask", why="shell code"),
    # env VAR=$(…) and variables.
    Line("env VAR=$(rm -rf x) ls", "deny", why="bash(rm -rf *)"),
    Line("env FOO=$(id) ls", "ask", why="command substitution"),
    Line('f=.env; cat "$f"', "ask", why="only known when it runs"),
    Line("$CMD status", "ask", why="only known when it runs"),
    Line("${X:-rm} -rf build", "ask", why="only known when it runs"),
    Line("cat $HOME/.ssh/id_rsa", "ask", why="only known when it runs"),
    Line("rm $FLAGS build", "ask", why="may match bash(rm -rf *)"),
    Line("PATH=/tmp/evil:$PATH git status", "ask", why="PATH"),
    Line("LD_PRELOAD=/tmp/x.so ls", "ask", why="LD_PRELOAD"),
    # `--` tricks and reordered flags.
    Line("rm -- -rf", "ask", why="`rm -- -rf` matches no allow rule"),
    Line("git push --force -- origin", "deny", why="bash(git push --force *)"),
    Line("rm -fr build", "deny", why="bash(rm -rf *)"),
    Line("rm -r -f build", "deny", why="bash(rm -rf *)"),
    Line("/bin/rm -rf build", "deny", why="bash(rm -rf *)"),
    Line("\\rm -rf build", "deny", why="bash(rm -rf *)"),
    Line("'r'm -rf build", "deny", why="bash(rm -rf *)"),
    Line("git push origin main --force", "deny", why="bash(git push --force *)"),
    Line("git push -u origin main", "ask", why="bash(git push *)"),
    # git options that run programs.
    Line("git -c core.fsmonitor='rm -rf x' status", "ask", why="core.fsmonitor"),
    Line("git -c core.pager=less log", "ask", why="core.pager"),
    Line("git --git-dir=/tmp/evil status", "ask", why="--git-dir"),
    Line("git log --output=/tmp/x", "ask", why="outside the workspace"),
    # Paths: secrets denied, the workspace guarded however a path gets out.
    Line("cat .env", "deny", why="read(**/.env)"),
    Line("cat config/.env", "deny", why="read(**/.env)"),
    Line("cat ./src/../.env", "deny", why="read(**/.env)"),
    Line("cat .env.local", "deny", why="read(**/.env.*)"),
    Line("cat secrets/server.pem", "deny", why="read(**/*.pem)"),
    Line("cat < .env", "deny", why="read(**/.env)"),
    Line("grep -r TOKEN .env", "deny", why="read(**/.env)"),
    Line("head -c 100 link_env", "deny", why="read(**/.env)"),
    Line("cp .env /tmp/x", "deny", why="read(**/.env)"),
    Line("cat link_out/file.txt", "ask", why="outside the workspace"),
    Line("cat sub/link", "ask", why="outside the workspace"),
    Line("cd sub && cat link", "ask", why="outside the workspace"),
    Line("cat ../outside/file.txt", "ask", why="outside the workspace"),
    Line("cat /etc/passwd", "ask", why="outside the workspace: /etc/passwd"),
    Line("cat ~/.ssh/id_rsa", "ask", why="tilde expansion"),
    Line("cd .. && ls", "ask", why="outside the workspace"),
    Line("ls *.md", "allow", why="bash(ls *)"),
    Line("cat *.md", "allow", why="bash(cat *)"),
    Line("cat src/*", "ask", why="outside the workspace"),
    Line("cat *", "deny", why="reads link_env is denied by read(**/.env)"),
    Line("cat .e*", "ask", why="glob pattern"),
    Line("cat {a,b}.py", "ask", why="brace expansion"),
    # Writes: redirections, protected paths, hard links.
    Line("echo hi > out.txt", "ask", why="matches no allow rule"),
    Line("echo hi > out.txt", "allow", "auto", "auto mode"),
    Line("echo hi > ../out.txt", "ask", "auto", "writes outside the workspace"),
    Line("echo hi > /etc/x", "ask", "auto", "writes outside the workspace: /etc/x"),
    Line("echo x > .git/hooks/pre-commit", "ask", "auto", "git's internals"),
    Line("cp README.md .git/config", "ask", "auto", "git's internals"),
    Line("mv .git gone", "ask", "auto", "git's internals"),
    Line("echo x > .kfd/config.toml", "ask", "auto", "kfd's project config"),
    Line("echo x >> ~/.bashrc", "ask", "auto", "not static"),
    Line("echo x > hard", "ask", "auto", "2 hard links"),
    Line("ln /etc/passwd pw", "ask", "auto", "outside the workspace"),
    Line("exec 3<>/dev/tcp/127.0.0.1/80", "ask", "auto", "network connection"),
    # Unicode look-alikes and invisible characters.
    Line("ｒｍ -rf build", "ask", why="FULLWIDTH LATIN SMALL LETTER R looks like ASCII"),
    Line("git status\u200b", "ask", why="ZERO WIDTH SPACE"),
    Line("rm\u00a0-rf build", "ask"),
    Line("echo $'\\u202e' x", "ask"),
    # Modes.
    Line("ls -la", "allow", "plan", "bash(ls *)"),
    Line("git status", "allow", "plan"),
    Line("npm run test", "deny", "plan", "plan mode"),
    Line("echo hi > out.txt", "deny", "plan", "plan mode"),
    Line("npm install", "allow", "auto", "auto mode"),
    Line("rm -rf build", "deny", "auto", "bash(rm -rf *)"),
    Line("curl http://127.0.0.1/", "deny", "auto", "bash(curl *)"),
    Line("echo $(date)", "ask", "auto", "command substitution"),
    Line("npm install", "ask", "accept-edits", "accept-edits mode asks"),
    Line("sleep 60 & echo $! > pid; wait", "allow", "auto", "auto mode"),
    Line("# only a comment", "allow", why="runs no command"),
    Line("cat a\0b", "ask", "auto", "control character U+0000"),
    Line("echo x > a\0b", "ask", "auto"),
    Line("cat " + "../" * 40 + "etc/passwd", "ask", "auto", "outside the workspace: /etc/passwd"),
    Line("echo " + "a" * 70_000, "ask", "auto", "longer than"),
]


@pytest.mark.parametrize("case", LINES, ids=[f"{c.mode}:{c.command[:50]!r}" for c in LINES])
def test_bash_line(world: World, case: Line) -> None:
    outcome = decide_bash(world, case.command, case.mode)
    assert outcome.decision == case.expected, outcome.reason
    assert case.why in outcome.reason


def test_the_corpus_is_large_enough() -> None:
    assert len(LINES) + len(CALLS) >= 80


# -- the same engine for every tool --------------------------------------------


class Call(NamedTuple):
    tool: str
    path: str | None
    expected: str
    mode: Mode = "default"
    write: bool = False
    why: str = ""
    options: Mapping[str, Any] = MappingProxyType({})


CALLS = [
    Call("read", ".env", "deny", "auto", why="read(**/.env)"),
    Call("read", "link_env", "deny", "auto", why="read(**/.env)"),
    Call("grep", "config/.env", "deny", why="read(**/.env)"),
    Call("read", "src/a.py", "allow", options={"read_only": True}, why="read-only"),
    Call("read", "../outside/file.txt", "ask", "auto", options={"read_only": True}),
    Call("read", "link_out/file.txt", "ask", "auto", why="outside the workspace"),
    Call("read", "{home}/.ssh/id_rsa", "deny", "auto", why="id_rsa is denied by read("),
    Call("read", "{home}/.ssh/config", "deny", "auto", why="read(~/.ssh/**)"),
    Call("write", "../x.txt", "deny", "auto", write=True, why="writes outside the workspace"),
    Call("write", "/etc/motd", "deny", "auto", write=True, why="edit(/etc/motd)"),
    Call(
        "write",
        "{outside}/new.txt",
        "allow",
        "auto",
        write=True,
        why="edit({outside}/**)",
        options={"extra": ("edit({outside}/**)",)},
    ),
    Call("edit", ".git/config", "ask", "auto", write=True, why="git's internals"),
    Call("edit", ".kfd/config.toml", "ask", "auto", write=True, why="kfd's project config"),
    Call("write", ".bashrc", "ask", "auto", write=True, why="shell start-up file"),
    Call("write", "hard", "ask", "auto", write=True, why="hard links"),
    Call("edit", "src/a.py", "allow", "auto", write=True, why="edit(src/**)"),
    Call("edit", "src/a.py", "allow", write=True, why="edit(src/**) (user config)"),
    Call("edit", "README.md", "ask", write=True, why="default mode asks"),
    Call("edit", "README.md", "allow", "accept-edits", write=True, options={"edits": True}),
    Call("edit", "src/a.py", "deny", "plan", write=True, why="plan mode"),
    Call("edit", "src/escape.py", "deny", write=True, why="writes outside the workspace"),
    Call(
        "web_fetch",
        None,
        "deny",
        why="web_fetch(domain:*.evil.example)",
        options={"arguments": {"url": "https://a.evil.example/x"}, "read_only": True},
    ),
    Call(
        "web_fetch",
        None,
        "allow",
        options={"arguments": {"url": "https://docs.python.org/3/"}, "read_only": True},
    ),
    Call(
        "web_fetch",
        None,
        "ask",
        why="untrusted content from `web_fetch`",
        options={
            "arguments": {"url": "https://docs.python.org/3/"},
            "read_only": True,
            "network": True,
            "untrusted": "web_fetch",
        },
    ),
    Call(
        "mcp__github__create_issue",
        None,
        "allow",
        why="mcp__github__*",
        options={"extra": ("mcp__github__*",)},
    ),
    Call("mcp__other__delete", None, "ask", options={"extra": ("mcp__github__*",)}),
]


@pytest.mark.parametrize("case", CALLS, ids=[f"{c.mode}:{c.tool}:{c.path}" for c in CALLS])
def test_tool_call(world: World, case: Call) -> None:
    names = {"home": str(world.home), "outside": str(world.outside)}
    options = dict(case.options)
    options["extra"] = tuple(text.format(**names) for text in options.get("extra", ()))
    path = case.path.format(**names) if case.path is not None else None
    outcome = decide_tool(world, case.tool, path, case.mode, write=case.write, **options)
    assert outcome.decision == case.expected, outcome.reason
    assert case.why.format(**names) in outcome.reason


# -- what the rest of a turn and the session change ------------------------------------


def test_after_untrusted_content_auto_mode_asks_before_changes_not_before_reads(
    world: World,
) -> None:
    changes = decide_bash(world, "npm install", "auto", untrusted="web_fetch")
    assert changes.decision == "ask"
    assert "untrusted content from `web_fetch` was read this turn" in changes.reason
    assert decide_bash(world, "ls -la", "auto", untrusted="web_fetch").decision == "allow"
    # An explicit rule of the user still allows what it names.
    assert decide_bash(world, "npm run test", "auto", untrusted="web_fetch").decision == "allow"
    edit = decide_tool(world, "write", "notes.md", "auto", write=True, untrusted="web_fetch")
    assert edit.decision == "ask" and "changes things" in edit.reason


def test_a_command_asking_for_the_network_is_asked_in_every_mode_unless_configured(
    world: World,
) -> None:
    asked = decide_bash(world, "npm install", "auto", network=True)
    assert asked.decision == "ask" and "network access" in asked.reason
    allowed = decide_bash(world, "npm install", "auto", network=True, network_allowed=True)
    assert allowed.decision == "allow"


def test_the_exact_line_allowed_for_the_session_runs_but_never_past_a_deny(world: World) -> None:
    line = "echo $(date) > out.txt"
    assert decide_bash(world, line).decision == "ask"
    allowed = decide_bash(world, line, session=(f"bash({line})",))
    assert allowed.decision == "allow" and "allowed for this session" in allowed.reason
    denied = "ls && rm -rf build"
    assert decide_bash(world, denied, "auto", session=(f"bash({denied})",)).decision == "deny"
    protected = "echo x > .git/config"
    outcome = decide_bash(world, protected, "auto", session=(f"bash({protected})",))
    assert outcome.decision == "ask" and "git's internals" in outcome.reason


def test_every_verdict_names_its_rule_and_source(world: World) -> None:
    denied = decide_bash(world, "git push --force")
    assert (denied.rule, denied.source) == ("bash(git push --force *)", "user config")
    builtin = decide_bash(world, "cat .env")
    assert (builtin.rule, builtin.source) == ("read(**/.env)", "built-in default")
    mode = decide_bash(world, "npm install", "auto")
    assert (mode.rule, mode.source) == ("", "mode")
