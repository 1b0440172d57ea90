"""Long runs of plain words, parsed as one word, give exactly the facts they gave before.

`kfd.policy.shell.runs` hands tree-sitter a stand-in where a long run of plain
words is one word; the walker reads the words from the source. It may only
ever be faster: runs are put in every context a run can stand in (arguments,
loop values, quotes, here-documents, tests, arithmetic, declarations,
redirections, substitutions, nested scripts, with reserved words and lone
dashes inside), and generated lines get runs at random places; each line is
analysed with and without merging (and with the fast path), and the
`ShellAnalysis` values must be equal.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfd.policy.shell import analyze
from kfd.policy.shell.parse import Collector, _Walker
from kfd.policy.shell.repair import parse_script
from kfd.policy.shell.runs import MIN_RUN, merge_runs

RUNS = {
    "paths": " ".join(f"src/m{i}.py" for i in range(40)),
    "letters": "a b c d " * 10,
    "tabs": "\t".join(["x"] * 30) + "\t",
    "options": " ".join(["-rf", "--force", "push", "origin", "+main", "-f"] * 6),
    "reserved": " ".join(["a", "done", "b", "in", "c", "then", "fi"] + ["w"] * 20 + ["do", "x"]),
    "dashes": " ".join(["p"] * 18 + ["-"] + ["q"] * 18 + ["--"] + ["r"] * 18),
    "numbers": " ".join(str(i) for i in range(40)),
    "odd": " ".join(["%1", "@x", "a,b", "^c", "x+y", ".", "..", "a.b", "_"] * 4),
    "commands": " ".join(["rm", "-rf", "/", "git", "push", "--force", "curl", "x"] * 4),
}
CONTEXTS = [
    "git add RUN",
    "RUN",
    "ls RUN; rm -rf build",
    "for f in RUN; do echo $f; done",
    'for f in RUN\ndo git add "$f"\ndone',
    "for f in x RUN y; do rm $f; done",
    "select f in RUN; do break; done",
    "echo RUN > out.txt",
    "echo RUN 2>&1",
    "echo RUN 2>/dev/null | wc -l",
    "ls > out RUN",
    "ls < in RUN",
    "ls RUN &>x",
    "ls RUN&",
    "ls RUN |& cat",
    "x=1 RUN",
    "A=b ls RUN",
    "ls RUN | wc && git push RUN",
    "(ls RUN)",
    "$(ls RUN)",
    "echo $(ls RUN) x",
    "echo `ls RUN`",
    "echo <(ls RUN)",
    'echo "RUN"',
    'echo "$x RUN"',
    "echo 'RUN'",
    "echo 'x' RUN 'y'",
    'echo "a" RUN "b"',
    "cat <<EOF\nRUN\nEOF",
    "cat <<EOF && ls RUN\nRUN\nEOF",
    "cat <<<RUN",
    "case x in RUN) ;; esac",
    "case x in a) ls RUN;; esac",
    "[[ RUN ]]",
    "[ RUN ]",
    "test RUN",
    "(( RUN ))",
    "a=(RUN)",
    "declare -a x=(RUN)",
    "export RUN",
    "local RUN",
    "readonly RUN",
    "unset RUN",
    "time ls RUN",
    "! ls RUN",
    "{ ls RUN; }",
    "if ls RUN; then ls RUN; fi",
    "while ls RUN; do :; done",
    "f() { ls RUN; }",
    "bash -c 'ls RUN'",
    'sh -c "rm RUN"',
    "ls RUN # RUN",
    "ls RUN\\\nRUN",
    "ls \\\nRUN",
    "ls RUN -- RUN",
    "sudo RUN",
    "env RUN",
    "timeout 5 RUN",
    "xargs RUN",
    "find . RUN -exec rm {} +",
    "echo RUN; rm -rf /",
    "coproc ls RUN",
    "echo ${x} RUN",
    "echo $xRUN",
    "echo x\\ RUN",
    "echo RUN\\ x",
    "a|b|c RUN\nrm -rf x && y",
    "ls RUN\nls RUN\n",
    "- RUN <<EOF\nx\nEOF",
    "python3 RUN - <<'EOF'\nimport os\nEOF",
    "eval RUN",
    "trap RUN EXIT",
    "echo RUN==x",
    "echo a=RUN",
    "echo RUN=a",
    "git -C RUN status",
    "echo {RUN}",
    "echo RUN}",
]
LINES = [context.replace("RUN", run) for context in CONTEXTS for run in RUNS.values()]


def same(line: str) -> None:
    written = analyze(line, fast_path=False, runs=False)
    assert analyze(line, fast_path=False) == written, line
    assert analyze(line) == written, line


def merged(line: str) -> bool:
    """Whether the line's script was parsed with runs merged (and kept)."""
    source = line.encode("utf-8", "surrogatepass")
    tree, stand_in, spans = parse_script(source, runs=True)
    walker = _Walker(Collector(line), source, stand_in, spans)
    return bool(spans) and walker.runs_hold(tree.root_node)


@pytest.mark.parametrize("line", LINES)
def test_a_run_gives_the_same_facts_merged_or_not(line: str) -> None:
    same(line)


def test_runs_are_merged_where_they_are_arguments_or_loop_values() -> None:
    # Not vacuous: most contexts of the table above do take the shortcut.
    taken = [line for line in LINES if merged(line)]
    assert len(taken) > len(LINES) / 3
    assert merged("for f in " + RUNS["paths"] + "; do echo $f; done")
    assert merged("git add " + RUNS["paths"] + ' && git commit -m "x"')


@pytest.mark.parametrize(
    "line",
    [
        'echo "' + RUNS["letters"] + '"',
        "cat <<EOF\n" + RUNS["letters"] + "\nEOF",
        "[[ " + RUNS["letters"] + " ]]",
        "export " + RUNS["letters"],
        "ls " + RUNS["letters"] + " > out x",
    ],
)
def test_runs_that_are_not_plain_arguments_are_parsed_as_written(line: str) -> None:
    assert not merged(line)
    same(line)


def test_merge_runs_keeps_offsets_and_cuts_at_words_of_syntax() -> None:
    source = b"for x in " + b"a " * 20 + b"; do echo $x; done"
    stand_in, spans = merge_runs(source)
    assert len(stand_in) == len(source)
    assert spans == {(11, 48): 19}
    assert stand_in[9:49] == b"a " + b"a_" * 18 + b"a "
    # Reserved words and a lone dash end a run; 2>x is no word of it.
    stand_in, spans = merge_runs(b"echo " + b"x " * 20 + b"done " + b"y " * 20 + b"2>x")
    assert b"done" in stand_in.split()
    assert all(count >= MIN_RUN for count in spans.values())
    assert stand_in.endswith(b"y 2>x")
    assert merge_runs(b"ls a b c")[1] == {}


_WORD = st.sampled_from(
    [
        *("ls", "git", "push", "--force", "-rf", "rm", "bash", "-c", "sudo", "env", "x", "-"),
        *("a=b", "'a b'", "$x", '"q"', "*", "~", "{a,b}", "a#b", "\\x", "(", ")", "!", "if"),
        *("then", "fi", "do", "done", "for", "in", "time", "declare", "export", "<<EOF", "EOF"),
        *("[[", "]]", "case", "esac", "a)", ";;", "$(", "`", "'", '"', "2>", "<", ">"),
    ]
)
_GLUE = st.sampled_from([" ", " ", "\t", "; ", " && ", " | ", "\n", " # c\n", " & ", "\\\n"])
_RUN = st.lists(
    st.sampled_from(["a", "src/x.py", "1", "2", "-", "done", "in", "%1", "-f", "x.y", "@"]),
    min_size=MIN_RUN + 1,
    max_size=40,
).map(" ".join)


@given(
    st.lists(st.tuples(_WORD, _GLUE, st.one_of(st.none(), _RUN)), min_size=1, max_size=10),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_lines_with_runs_give_the_same_facts(
    parts: list[tuple[str, str, str | None]],
) -> None:
    line = "".join(word + glue + (run + " " if run else "") for word, glue, run in parts)
    same(line)
