"""Properties of the permission engine, over generated command lines (hypothesis).

However a denied or asked command is spelled (options reordered, clustered,
split, long, abbreviated; words quoted and escaped; the program by path) and
put together (chained, piped, nested in substitutions, subshells, ``bash -c``
scripts, wrappers, control flow, redirections), in whatever mode, even when
the user allows every command, the line is never allowed.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.rulebook import configured
from kfd.protocol import MODES, Mode
from kfd.testing.decide import decide_line

ALLOWED = [
    "git status",
    "ls -la",
    "cat README.md",
    "npm run test",
    "npm run test -- --watch",
    "make",
    "echo hello",
    "true",
]
RULES = PermissionsConfig(
    # Even with every command allowed, a denied or asked one is never allowed.
    allow=[*(f"bash({c})" for c in ALLOWED), "bash(*)"],
    ask=["bash(git push *)"],
    deny=["bash(rm -rf *)", "bash(git push --force *)", "bash(curl *)", "bash(chmod 777 *)"],
)
SOURCES = [*configured(RULES, "user"), *builtin_rules()]


def _quoted(word: str) -> st.SearchStrategy[str]:
    """``word`` as bash reads it, written in one of the ways that remove to it."""
    escaped = "".join(f"\\{c}" if c.isalnum() else c for c in word)
    ansi = "$'" + "".join(f"\\x{ord(c):02x}" for c in word) + "'"
    half = f"'{word[:1]}'{word[1:]}" if len(word) > 1 else f"'{word}'"
    return st.sampled_from([word, f"'{word}'", f'"{word}"', escaped, ansi, half])


@st.composite
def rm_rf(draw: st.DrawFn) -> str:
    """``rm -rf TARGET`` in any of the spellings rm reads the same."""
    recursive = draw(st.sampled_from(["-r", "-R", "--recursive", "--rec", "--recur", "-r"]))
    force = draw(st.sampled_from(["-f", "--force", "--for", "--interactive=never"]))
    extra = draw(
        st.lists(st.sampled_from(["-v", "--verbose", "-d", "--one-file-system"]), max_size=2)
    )
    if recursive.startswith("-") and not recursive.startswith("--") and force == "-f":
        options = draw(
            st.sampled_from([[recursive, force], [recursive + "f"], ["-f" + recursive[1:]]])
        )
    else:
        options = [recursive, force]
    options = [*options, *extra]
    draw(st.randoms()).shuffle(options)
    target = draw(st.sampled_from(["build", "/", "./dist", "~/x"]))
    program = draw(st.sampled_from(["rm", "/bin/rm", "/usr/bin/rm", "command rm"]))
    words = [*options, target]
    if draw(st.booleans()):  # GNU reads options after operands too
        words = [target, *options]
    quoted = [draw(_quoted(w)) if not w.startswith("~") else w for w in words]
    return " ".join([program, *quoted])


@st.composite
def force_push(draw: st.DrawFn) -> str:
    """``git push --force`` in the spellings git reads the same."""
    force = draw(
        st.sampled_from(
            ["--force", "-f", "--force-with-lease", "--mirror", "--force-with-lease=main"]
        )
    )
    globals_ = draw(st.sampled_from(["", "-C sub ", "--no-pager ", "-P ", "-c color.ui=never "]))
    refs = draw(st.sampled_from(["", "origin main", "origin +main", "origin HEAD:main"]))
    words = [force, *refs.split()]
    if "+main" in refs:
        words = refs.split()  # the + refspec alone is the force
    draw(st.randoms()).shuffle(words)
    program = draw(st.sampled_from(["git", "/usr/bin/git", "git-push", "git send-pack"]))
    if program == "git-push":
        return f"git-push {' '.join(words)}"
    if program == "git send-pack":
        return f"git send-pack {' '.join(words)}"
    return f"{program} {globals_}push {' '.join(words)}"


ASKED = st.sampled_from(
    ["git push origin main", "git push", "git $SUB", "rm $FLAGS build", "git pf", "curl $URL"]
)
OTHERS = st.sampled_from(
    [
        "curl http://127.0.0.1/",
        "curl -s -XPOST -d @.env http://127.0.0.1/",
        "chmod 0777 run.sh",
        "chmod -R 777 build",
        "cat .env",
        "cat src/../.env",
        "head -c 10 .env.local",
        "grep -r TOKEN .",
        "cat < .env",
    ]
)
DENIED = st.one_of(rm_rf(), force_push(), OTHERS, ASKED)
EVALUATED = st.sampled_from(
    [
        "read 'a[$(touch x)]'",
        "a['$(touch x)']=1",
        "printf -v 'a[$(touch x)]' y",
        "test -v 'a[$(touch x)]'",
        "declare 'a[$(touch x)]'=1",
        "x=${a[i]}",
        "echo $((x))",
        "compgen -C 'touch x' y",
    ]
)
"""Code bash evaluates from data: only as bash syntax (a program given these words runs
nothing of them unless it is a shell, which is followed)."""


def wrapped(inner: str) -> st.SearchStrategy[str]:
    """``inner`` run through one of the ways a line can hide a command."""
    quoted = shlex.quote(inner)
    return st.sampled_from(
        [
            f"( {inner} )",
            f"{{ {inner}; }}",
            f"! {inner}",
            f"time {inner}",
            f"echo $( {inner} )",
            f"echo `{inner}`",
            f"cat <( {inner} )",
            f"bash -c {quoted}",
            f"sh -c {quoted}",
            f"timeout 5 bash -c {quoted}",
            f"env FOO=1 {inner}",
            f"nice -n 5 {inner}",
            f"nohup {inner}",
            f"command {inner}",
            f"sudo {inner}",
            f"unshare -r {inner}",
            f"setpriv --reuid=1000 {inner}",
            f"prlimit --nofile=10 {inner}",
            f"taskset 1 {inner}",
            f"chrt -f 1 {inner}",
            f"flock /tmp/lock {inner}",
            f"flock /tmp/lock -c {quoted}",
            f"script -qc {quoted} /dev/null",
            f"watch {quoted}",
            f"strace -f {inner}",
            f"stdbuf -oL {inner}",
            f"ionice -c 3 {inner}",
            f"busybox {inner}",
            f"mywrapper {inner}",
            f"if true; then {inner}; fi",
            f"while false; do {inner}; done",
            f"for x in a b; do {inner}; done",
            f"case x in x) {inner};; esac",
            f"f() {{ {inner}; }}; f",
            f"eval {quoted}",
            f"{inner} > out.txt",
            f"{inner} 2>&1 | cat",
            f"{inner} < README.md",
            f"{inner} > /dev/null 2>&1",
            f"trap {quoted} EXIT",
        ]
    )


SHELL_ONLY = frozenset({"mywrapper", "busybox", "strace", "watch", "script", "flock"})


def shell_wrapped(inner: str) -> st.SearchStrategy[str]:
    """The ways of :func:`wrapped` under which bash itself still reads ``inner``."""
    return wrapped(inner).filter(lambda line: line.split()[0] not in SHELL_ONLY)


def joined(left: str, right: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            f"{left} && {right}",
            f"{left} || {right}",
            f"{left}; {right}",
            f"{left} | {right}",
            f"{left} & {right}",
            f"{left}\n{right}",
            f"{right} && {left}",
            f"{right} | {left}",
        ]
    )


def hidden(inner: str, depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return st.just(inner)
    return wrapped(inner).flatmap(lambda line: hidden(line, depth - 1))


@st.composite
def compositions(draw: st.DrawFn) -> str:
    allowed = draw(st.sampled_from(ALLOWED))
    denied = draw(DENIED)
    denied = draw(hidden(denied, draw(st.integers(0, 2))))
    line = draw(joined(allowed, denied))
    return draw(st.one_of(st.just(line), hidden(line, 1)))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("props").resolve()
    (root / "README.md").write_text("# demo\n")
    (root / ".env").write_text("TOKEN=x\n")
    (root / ".env.local").write_text("TOKEN=y\n")
    (root / "src").mkdir()
    (root / "sub").mkdir()
    (root / "build").mkdir()
    (root / "run.sh").write_text("#!/bin/sh\n")
    return root


def decision(workspace: Path, line: str, mode: Mode) -> str:
    return decide_line(workspace, line, mode, SOURCES, session_rule=f"bash({line})")


def test_the_parts_alone_are_decided_as_expected(workspace: Path) -> None:
    for line in ALLOWED:
        assert decision(workspace, line, "default") == "allow", line
    for line in ("rm -rf build", "git push --force", "curl http://x/", "cat .env"):
        assert decision(workspace, line, "auto") == "deny", line


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(line=st.one_of(rm_rf(), force_push()), mode=st.sampled_from(MODES))
def test_every_spelling_of_a_denied_command_is_denied(
    workspace: Path, line: str, mode: Mode
) -> None:
    assert decision(workspace, line, mode) == "deny", line


@st.composite
def evaluations(draw: st.DrawFn) -> str:
    allowed = draw(st.sampled_from(ALLOWED))
    inner = draw(EVALUATED)
    for _ in range(draw(st.integers(0, 2))):
        inner = draw(shell_wrapped(inner))
    return draw(joined(allowed, inner))


@SETTINGS
@given(line=evaluations(), mode=st.sampled_from(MODES))
def test_code_bash_evaluates_from_data_is_never_allowed(
    workspace: Path, line: str, mode: Mode
) -> None:
    assert decision(workspace, line, mode) != "allow", line


@SETTINGS
@given(line=compositions(), mode=st.sampled_from(MODES))
def test_a_denied_or_asked_command_composed_with_an_allowed_one_is_never_allowed(
    workspace: Path, line: str, mode: Mode
) -> None:
    assert decision(workspace, line, mode) != "allow", line
