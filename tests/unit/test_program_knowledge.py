"""The knowledge of programs is true of the programs: tables against their own help.

The option tables (``kfd/policy/programs/data/options-*.json``) are written by
``scripts/program_options.py`` from each program's ``--help``; here the
installed programs are asked again, so a table missing an option (a newer
version, a typo) fails. What ``meaning.toml`` says of an option must name an
option the program has; every bash builtin must be classified; every wrapper
must be one the analyzer can read. And the parser reads command lines the way
the programs do.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

from kfd.policy.programs.argv import Arg, parse
from kfd.policy.programs.builtins import builtin_names
from kfd.policy.programs.spec import ProgramSpec, known_programs, spec_for
from kfd.policy.programs.wrappers import wrapper_for, wrapper_names

ROOT = Path(__file__).parents[2]
DATA = resources.files("kfd.policy.programs.data")
MEANING = tomllib.loads(DATA.joinpath("meaning.toml").read_text())


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "program_options", ROOT / "scripts" / "program_options.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["program_options"] = module
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def _spellings(lines: list[str]) -> dict[str, str]:
    """Spelling to arity of option lines."""
    found: dict[str, str] = {}
    for line in lines:
        words = line.split()
        arity = words.pop() if words[-1] in ("=", "=?") else ""
        for word in words:
            found[word] = arity
    return found


GNU = [p for family in GENERATOR.GNU.values() for p in family]


@pytest.mark.parametrize("program", [*GNU, "curl"])
def test_a_gnu_table_has_every_option_the_installed_program_lists(program: str) -> None:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed")
    argv = [path, "--help", "all"] if program == "curl" else [path, "--help"]
    listed = _spellings(GENERATOR.option_lines(GENERATOR._run(argv, "/")))
    spec = spec_for(program)
    assert spec is not None, f"no table for {program}: run scripts/program_options.py"
    for spelling, arity in listed.items():
        option = spec.option(spelling)
        assert option is not None, f"{program} {spelling} is missing from its table"
        if spelling.startswith("--"):
            assert option.arity == arity or program in ("wget",), (program, spelling)


def test_git_tables_have_every_option_of_the_installed_git() -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    spec = spec_for("git")
    assert spec is not None
    for name in ("push", "reset", "clean", "checkout", "branch", "rebase", "commit", "diff"):
        listed = _spellings(GENERATOR.option_lines(GENERATOR._run([git, name, "-h"], "/")))
        command = spec.commands[name]
        for spelling in listed:
            assert command.option(spelling) is not None, f"git {name} {spelling}"


def test_the_tables_are_what_the_generator_writes_today() -> None:
    """Regenerating changes nothing for the programs installed here (or they are absent)."""
    for name in ("options-gnu.json",):
        tables = GENERATOR.TABLES[name]()
        if not tables:
            pytest.skip("the programs are not installed")
        written = DATA.joinpath(name).read_text()
        stale = GENERATOR.render(tables) != written
        assert not stale, f"{name} is stale: run scripts/program_options.py"


def _options_named(spec: ProgramSpec) -> set[str]:
    return {option.name for option in spec.options.values()}


def _walk_meaning(name: str, table: dict[str, object], spec: ProgramSpec) -> list[str]:
    """Every option a meaning names that the program lacks."""
    missing: list[str] = []
    names = _options_named(spec) | {f"no-{n}" for n in _options_named(spec)}
    effects = table.get("effects", {})
    assert isinstance(effects, dict)
    for effect, options in effects.items():
        for option in options:
            if option.partition("=")[0] not in names:
                missing.append(f"{name}: {effect} names {option}")
    implies = table.get("implies", {})
    assert isinstance(implies, dict)
    for option, implied in implies.items():
        for each in [option.partition("=")[0], *implied]:
            if each not in names:
                missing.append(f"{name}: implies names {each}")
    for sub, sub_table in dict(table.get("commands", {})).items():  # type: ignore[call-overload]
        if sub in spec.commands:
            missing += _walk_meaning(f"{name} {sub}", sub_table, spec.commands[sub])
    return missing


def test_what_meaning_toml_says_of_an_option_names_an_option_the_program_has() -> None:
    missing: list[str] = []
    for name, table in MEANING.items():
        spec = spec_for(name)
        assert spec is not None, name
        missing += _walk_meaning(name, table, spec)
    assert not missing, missing


def test_every_bash_builtin_is_classified() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    listed = subprocess.run([bash, "-c", "compgen -b"], capture_output=True, text=True).stdout
    assert set(listed.split()) <= builtin_names()


@pytest.mark.parametrize("name", sorted(wrapper_names()))
def test_every_wrapper_reads_its_options(name: str) -> None:
    wrapper = wrapper_for(name)
    assert wrapper is not None
    assert wrapper.program.style == "plain"
    options = wrapper.program.options
    for spelling in wrapper.terminal:
        assert spelling in options, f"{name}: terminal option {spelling} is no option of it"
    names = {o.name for o in options.values()}
    for option in (*wrapper.scripts, *wrapper.chdir, *wrapper.split, *wrapper.writes):
        assert option in names, f"{name}: {option} is no option of it"


def test_the_knowledge_covers_the_commands_rules_are_written_about() -> None:
    wanted = {
        "rm", "git", "chmod", "chown", "curl", "wget", "npm", "pnpm", "yarn", "docker",
        "kubectl", "find", "sed", "cp", "mv", "dd", "grep", "rg", "tar", "ls", "cat",
    }  # fmt: skip
    assert wanted <= known_programs()


READS = [
    ("rm", "-R -f x", ["force", "recursive"], ["x"]),
    ("rm", "--rec --for x", ["force", "recursive"], ["x"]),
    ("rm", "x -rf", ["force", "recursive"], ["x"]),
    ("rm", "-v -- -r -f", ["verbose"], ["-r", "-f"]),
    ("rm", "--interactive=never x", ["force", "interactive"], ["x"]),
    ("cp", "-a a b", ["archive", "no-dereference", "recursive"], ["a", "b"]),
    ("sed", "-in s/a/b/ f", ["in-place"], ["s/a/b/", "f"]),
    ("sed", "-ni s/a/b/ f", ["in-place", "quiet"], ["s/a/b/", "f"]),
    ("tar", "czf out.tgz src", ["create", "file", "gzip"], ["src"]),
    ("dd", "if=a of=b", ["if", "of"], []),
    ("grep", "-rn -e x src", ["line-number", "recursive", "regexp"], ["src"]),
    ("head", "-5 README.md", ["<number>"], ["README.md"]),
    ("curl", "-XPOST -d@f http://x", ["data", "request"], ["http://x"]),
    # Runs of operands are taken at once: an option or `--` after them still counts.
    ("rm", "a b c d - e -f g", ["force"], ["a", "b", "c", "d", "-", "e", "g"]),
    ("rm", "a b -- -r c", [], ["a", "b", "-r", "c"]),
    ("cp", "a b c -r d", ["recursive"], ["a", "b", "c", "d"]),
]


@pytest.mark.parametrize(("program", "line", "options", "operands"), READS)
def test_a_command_line_is_read_as_its_program_reads_it(
    program: str, line: str, options: list[str], operands: list[str]
) -> None:
    spec = spec_for(program)
    assert spec is not None
    parsed = parse(spec, [Arg(w) for w in line.split()])
    assert sorted(parsed.effective_options()) == options
    assert parsed.operands == operands
    assert not parsed.uncertain


SUBCOMMANDS = [
    ("git", "push -f", ["push"], ["force"]),
    ("git", "push origin +main", ["push"], ["force"]),
    ("git", "send-pack --force o", ["push"], ["force"]),
    ("git", "remote rm origin", ["remote", "remove"], []),
    ("git", "stash drop", ["stash", "drop"], []),
    ("docker", "rm -f web", ["container", "rm"], ["force"]),
    ("docker", "container remove web", ["container", "rm"], []),
    ("kubectl", "-n delete get pods", ["get"], ["namespace"]),
    ("npm", "publ", ["publish"], []),
    ("npm", "i -g x", ["install"], ["global"]),
    ("pnpm", "rm x", ["remove"], []),
]


@pytest.mark.parametrize(("program", "line", "path", "options"), SUBCOMMANDS)
def test_subcommands_resolve_through_aliases_and_prefixes(
    program: str, line: str, path: list[str], options: list[str]
) -> None:
    spec = spec_for(program)
    assert spec is not None
    parsed = parse(spec, [Arg(w) for w in line.split()])
    assert parsed.path == path
    assert sorted(parsed.effective_options()) == options


def test_what_the_program_may_read_otherwise_is_marked_uncertain() -> None:
    rm = spec_for("rm")
    git = spec_for("git")
    assert rm is not None and git is not None
    assert parse(rm, [Arg("--frobnicate"), Arg("x")]).unknown == ["--frobnicate"]
    assert parse(git, [Arg("push"), Arg("--forc")]).ambiguous  # force, force-with-lease...
    assert parse(git, [Arg("pf")]).open  # an alias, a git-pf program: anything
    assert parse(git, [Arg("receive-pack"), Arg(".")]).open
    assert parse(rm, [Arg("$F", static=False), Arg("x")]).dynamic
    late = parse(rm, [Arg("a"), Arg("b"), Arg("$F", static=False), Arg("c")])
    assert late.dynamic and late.operands == ["a", "b", None, "c"]
