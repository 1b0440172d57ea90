"""A command whose words are all known is read as any command is.

`kfd.policy.programs.argv.parse_argv` reads such words without making an `Arg`
of each, and takes a run of plain operands by searching the joined texts
(`_plain_run`): the reading must be the one made word by word, for any words
(runs broken by options, ``-``, ``--``, a word that is only ``-``, subcommands,
values), and for every program kfd knows the options of.
"""

from __future__ import annotations

from itertools import repeat

from hypothesis import given, settings
from hypothesis import strategies as st

from kfd.policy.programs.argv import args_of, parse, parse_argv
from kfd.policy.programs.spec import spec_for

PROGRAMS = ["git", "rm", "cp", "tar", "find", "sed", "docker", "chmod", "grep", "curl", "dd"]
WORDS = st.sampled_from(
    [
        "-", "--", "-f", "-rf", "--force", "--rec", "-n5", "-5", "-C", "x", "src/a.py",
        "a b", "add", "push", "origin", "+main", "-o", "out", "--output=o", "-e", "s/a/b/",
        "=", ";", "{}", "-exec", "run", "if=/dev/zero", "-R", "--", "ü", "",
    ]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(program=st.sampled_from(PROGRAMS), words=st.lists(WORDS, max_size=40))
def test_known_words_read_as_words_read_one_by_one(program: str, words: list[str]) -> None:
    spec = spec_for(program)
    assert spec is not None
    parse_argv.cache_clear()
    known = parse_argv(program, (program, *words), frozenset(), False)
    one_by_one = parse(spec, args_of(words, repeat(True)))
    assert known == one_by_one


def test_a_long_run_of_operands_ends_at_the_first_option_not_at_a_lone_dash() -> None:
    texts = [f"src/m{n}.py" for n in range(300)]
    words = ("git", "add", *texts[:150], "-", *texts[150:], "-f", "last")
    parse_argv.cache_clear()
    parsed = parse_argv("git", words, frozenset(), False)
    assert parsed is not None
    assert parsed.operands == [*texts[:150], "-", *texts[150:], "last"]
    assert parsed.options == {"force": [""]}
    assert parsed.positions[-1] == len(words) - 2
