"""The shell analyser's fast path gives exactly the facts tree-sitter gives.

`kfd.policy.shell.fastpath` reads provably simple lines without tree-sitter.
It may only ever be faster: every line of the permission corpora, a table of
near misses and generated lines (plain words, quotes, operators, comments and
every construct it must refuse, mixed) are analysed both ways, and the two
`ShellAnalysis` values must be equal (commands, argv, sources, risks,
redirections, in order). What it is unsure of goes to tree-sitter.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfd.policy.shell import analyze
from kfd.policy.shell.fastpath import simple_line

# The analyser's own specification table, read as data (pytest puts this directory first).
from test_shell_analysis import CASES, EVALUATING, INERT, RULES  # isort: skip

CORPUS_LINES = [
    case[1]
    for name in ("permission_corpus.toml", "permission_attacks.toml")
    for group in tomllib.loads((Path(__file__).parent / name).read_text())["group"]
    for case in group["cases"]
    if isinstance(case[1], str)
]
TABLE_LINES = (
    [case.line for case in CASES]
    + [line for line in EVALUATING + INERT]
    + [line for line, _, _ in RULES]
)

NEAR_MISSES = [
    "git status",
    "git commit -m 'Fix the parser; && || | it' && git push origin main",
    "ls src && cat README.md || echo none",
    "grep -rn 'TODO' src | sort | uniq -c | head -20; ls",
    "ls x && ls x && ls x; ls x | ls x",
    "a | b && c",
    "a | b | c && d | e || f",
    "a && b | c",
    "ls\n\n  # a comment\nls -la\n# another",
    "ls # not a whole-line comment",
    "- x=1 rm -rf /",
    "- a=b | push",
    "x%1 a",  # tree-sitter cannot parse a command name holding % or @
    "ls && git@x push",
    "bash -c 'eval ls\\t%1'",  # found by the generated lines below
    # tree-sitter reads the lines after a pipeline of three as its last command's words
    "ls | sort | uniq\nrm -rf build && echo done",
    "a|b|c\no\np&&q",
    "a|b|c\n# c\n\nr&&s",
    "a|b|c; d\ne&&f",
    "a|b|c;\no&&p",
    "ls;# glued comment",
    "a#b",
    "ls;",
    "ls; ",
    ";ls",
    "ls;;",
    "ls; ;ls",
    "ls &&",
    "ls &&\nls",
    "ls |\nwc",
    "ls & ls",
    "ls &",
    "ls |& wc",
    "ls ||| wc",
    "FOO=bar ls",
    "ls FOO=bar x+=1 --opt=value -- -x",
    "'ls' x",
    "'if' x",
    "i'f' x",
    "if true; then ls; fi",
    "time ls",
    "declare x",
    "export A=b",
    "unset x",
    "coproc ls",
    "echo done in for while",
    "ls ==",
    "ls == x",
    "ls a==b",
    "ls =~ x",
    "ls =",
    "ls =x",
    "ls a=",
    "echo 'a\\b' 'it''s' ''",
    'git commit -m "Fix the parser; && || | it" && git push origin main',
    'echo "a" "b c"d"e" \'f\'"g"',
    '"rm" -rf build',
    '"if" x',
    'r"m" -rf /',
    'echo "x" # c',
    'echo "unterminated',
    'echo "a\tb"',
    '"git" "push" "--force"',
    # Found by the generated quoted words below: tree-sitter reads a reserved word glued
    # to a quote as the word, `<(` inside double quotes as a substitution, and (fixed in
    # the walker) blanks before a closing quote as no content.
    'export"/"',
    'if":" x',
    'echo "<("',
    'x ">(a" y',
    'echo " " "\t" " $"',
    'rm -rf " "/',
    "echo 'a<<b'; echo 'a<<b'",
    # Redirections after a command's words; tree-sitter gives a later command's to
    # all before it, reads `0<x` as `0 <x` and drops a lone `-` before one.
    "npm run test -- --watch=false 2>&1 | tail -n 50",
    "echo x > out.txt; cat < in.txt >> log 2>/dev/null",
    "make &> build.log && ls",
    'echo hi > "my file"',
    "echo x >/dev/tcp/h/80",
    "ls > x && ls > x; ls > x | cat",
    "a | b > c && d",
    "a && b > c && d",
    "git || git &>/dev/null || git",
    "x 0< q",
    "x - 2>1",
    "ls >& 2 || ls",
    "ls >&2 x",
    # Redirected to a descriptor only (no file recorded): still a redirected statement.
    "ls | cat 2>&1",
    "ls && cat >&2 && ls",
    "ls 2>&1 | cat; ls 2>&1 && ls",
    "ls >&2; ls >&2 > out; ls > out >&2; ls 2>&1 > out 1>&2",
    "echo \"a > b\" '<c'",
    # Command substitutions, each a whole word of a simple script.
    "echo $(date) > out.txt; echo $(date) > out.txt",
    "kill $(pgrep -f x) && ls $(git ls-files)",
    "cd $(git rev-parse --show-toplevel) && ls",
    "echo $(a; b) $(c | d && e) $(ls > x 2>&1)",
    "echo $(rm -rf /) $(git push --force origin main)",
    "ls $(git rev-parse --show-toplevel)/src",
    "x=$(date)",
    "echo a$(b) $(c)d",
    "$(echo rm) x",
    "echo $(echo $(x))",
    "echo $() $( ) $(;)",
    "echo $(ls) > $(date)",
    'echo "$(ls)"',
    "echo 'unterminated",
    "bash -c 'ls && cat README.md; rm -rf build'",
    "sudo -u root bash -c 'git push --force origin main'",
    "timeout 5 git push --force origin main",
    "rm --rec --for build; git log -p -- src/main.py",
    "env -i PATH=/usr/bin ls",
    "find . -name x -exec rm {} +",
    "git -c core.pager=less log",
    "echo %1 @x ,y :z +w",
    "%1",
    "read x",
    "printf -v x %s y",
    "test -v x",
    "let x=1",
    "eval ls",
    "source x",
    ". x",
    "exec ls",
    "alias ls=rm",
    "\tls\t-la\t",
    "ls x\r",
    "ls \x00",
    "ls \u202e",
    "echo $HOME",
    'echo "quoted"',
    "ls > out.txt",
    "ls 2>&1",
    "echo *.md ~ {a,b}",
    "",
    "   ",
    "\n",
    "# only a comment",
]


def same(line: str) -> None:
    assert analyze(line) == analyze(line, fast_path=False, runs=False), line


@pytest.mark.parametrize("line", CORPUS_LINES + TABLE_LINES + NEAR_MISSES)
def test_a_line_gives_the_same_facts_with_and_without_the_fast_path(line: str) -> None:
    same(line)


def test_the_fast_path_takes_the_plain_lines_of_the_corpus() -> None:
    # Not vacuous: a good share of the corpus goes the fast way (and is checked above).
    taken = [line for line in CORPUS_LINES if simple_line(line) is not None]
    assert len(taken) > len(CORPUS_LINES) / 4


def test_every_mix_of_chain_operators_gives_the_same_facts() -> None:
    # tree-sitter nests `a | b | c && d` oddly; the fast path must take only the mixes
    # it reads as written (repeated commands: a statement seen twice is walked once, so
    # a wrong nesting level would show).
    taken = 0
    for count in range(2, 7):
        for operators in itertools.product(["&&", "||", "|"], repeat=count - 1):
            words = (["ls x", "ls x", "cat y"] * count)[:count]
            line = words[0] + "".join(
                f" {o} {w}" for o, w in zip(operators, words[1:], strict=True)
            )
            taken += simple_line(line) is not None
            same(line)
            same(f"{line}; {line}\n{line}")
    assert taken > 200


@pytest.mark.parametrize(
    "line",
    [
        "git commit -m '" + "Fix the parser edge case in the tokenizer. " * 90 + "'",
        "git add " + "src/m1.py " * 400,
        "; ".join(["grep -rn 'TODO' src | sort | uniq -c | head -20"] * 80),
        " && ".join(["ls src/a.py"] * 290) + "\n# 1",
    ],
)
def test_long_plain_lines_skip_tree_sitter(line: str) -> None:
    assert simple_line(line) is not None
    same(line)


@pytest.mark.parametrize(
    "line",
    [
        "a | b | c && d",
        "a && b | c | d",
        "ls # c",
        "ls &&",
        "FOO=bar ls",
        "for x in a; do ls; done",
        "echo $x",
        'echo "$x"',
        'echo "a\\b"',
        'echo "a!"',
        'echo "`ls`"',
        'echo "a\nb"',
        "echo `ls`",
        "ls >x y",
        "ls>x",
        "a | b > c",
        "a && b > c && d",
        "ls 0<x",
        "cat - > x",
        "ls >&-",
        "ls >| x",
        "ls <> x",
        "ls > -x",
        "> x",
        "ls \\x",
        "ls *",
        "ls {a,b}",
        "ls ~",
        "(ls)",
        "! ls",
        "ls\u00a0x",
        "cat <<EOF\nx\nEOF",
        "# only a comment",
        "- x=",
        "- ls",
        "ls; -x=1 y",
    ],
)
def test_the_fast_path_leaves_what_it_does_not_know_to_tree_sitter(line: str) -> None:
    assert simple_line(line) is None


_WORDS = st.sampled_from(
    [
        "ls",
        "git",
        "push",
        "--force",
        "-rf",
        "rm",
        "bash",
        "-c",
        "sudo",
        "env",
        "timeout",
        "5",
        "cat",
        ".env",
        "src/a.py",
        "a=b",
        "--o=v",
        "x+=1",
        "%1",
        "@f",
        ",",
        ":",
        "-",
        "--",
        "==",
        "=~",
        "=",
        "=x",
        "a==b",
        "+=",
        "+=x",
        "a+=",
        "-=",
        "-eq",
        "1",
        "2",
        "'a\tb'",
        "if",
        "then",
        "fi",
        "do",
        "done",
        "for",
        "in",
        "time",
        "declare",
        "export",
        "unset",
        "read",
        "printf",
        "-v",
        "eval",
        "exec",
        "source",
        ".",
        "xargs",
        "find",
        "-exec",
        "{}",
        "+",
        "'a b'",
        "$(ls)",
        "$(rm -rf /)",
        "$(a; b && c | d)",
        "$(git push --force)",
        "a$(b)",
        "$(",
        "$()",
        '"a b"',
        '""',
        '"a;b&&c|d"',
        'a"b"c',
        '"it\'s"',
        "'say \"hi\"'",
        '"#"',
        '"*"',
        '"~"',
        '"{a,b}"',
        '"if"',
        '"-"',
        '"=="',
        '"a=b"',
        '"-rf"',
        '"rm"',
        "''",
        "'it''s'",
        "'a;b&&c|d'",
        "a'b'c",
        "'$x'",
        "'ls && rm -rf /'",
        "$x",
        '"q"',
        "*",
        "~",
        "{a,b}",
        "a#b",
        "\\x",
        "(",
        ")",
        "!",
    ]
)
_GLUE = st.sampled_from(
    [
        " ",
        " ",
        " ",
        "\t",
        "  ",
        "; ",
        ";",
        " && ",
        "&&",
        " || ",
        " | ",
        "|",
        "\n",
        "\n\n",
        "\n# c\n",
        " # c",
        ";;",
        " & ",
        "&",
        " > ",
        " 2>&1 ",
        "\\\n",
    ]
)


@given(
    st.lists(st.tuples(_WORDS, _GLUE), min_size=1, max_size=14),
    st.sampled_from(["", "\n# 7", ";", " "]),
)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_lines_give_the_same_facts_with_and_without_the_fast_path(
    parts: list[tuple[str, str]], end: str
) -> None:
    line = "".join(word + glue for word, glue in parts[:-1]) + parts[-1][0] + end
    same(line)
    same(f"bash -c {line!r}" if "'" not in line else f"bash -c '{line.replace(chr(39), '')}'")


_QUOTED_ALPHABET = [
    *"ab -;|&#'=*?~{}()<>/.%@:,+\t",
    *("if", "do", "rm", "git", "push", "--force", "==", "=~", "  "),
]


@st.composite
def _quoted_word(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["double", "double", "single", "plain"]))
        content = "".join(draw(st.lists(st.sampled_from(_QUOTED_ALPHABET), max_size=5)))
        if kind == "double":
            parts.append(f'"{content.replace(chr(34), "")}"')
        elif kind == "single":
            parts.append(f"'{content.replace(chr(39), '')}'")
        else:
            parts.append(draw(st.sampled_from(["ls", "rm", "-rf", "x", "a=b", "if", "export"])))
    return "".join(parts)


@given(
    st.lists(
        st.tuples(
            st.lists(_quoted_word(), min_size=1, max_size=5),
            st.sampled_from([" ", "; ", " && ", " || ", " | ", "\n", "&&", " & "]),
        ),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lines_of_quoted_words_give_the_same_facts(commands: list[tuple[list[str], str]]) -> None:
    line = "".join(" ".join(words) + glue for words, glue in commands[:-1])
    same(line + " ".join(commands[-1][0]))


_REDIRECTIONS = [
    ">",
    ">>",
    "<",
    "2>",
    "2>>",
    "&>",
    "2>&",
    ">&",
    "1>",
    "0<",
    ">|",
    "<>",
    ">&-",
    "&>>",
]
_TARGETS = ["out", "x.txt", "/dev/null", "1", "2", '"my file"', "'q'", "/dev/tcp/h/1", "-", "=x"]


@st.composite
def _redirected_command(draw: st.DrawFn) -> str:
    names = st.sampled_from(["ls", "git", "rm", "-rf", "x", "a=b", "2", "-"])
    words = draw(st.lists(names, min_size=1, max_size=4))
    for _ in range(draw(st.integers(0, 3))):
        operator = draw(st.sampled_from(_REDIRECTIONS))
        glue = draw(st.sampled_from(["", " "]))
        words.append(operator + glue + draw(st.sampled_from(_TARGETS)))
        if draw(st.booleans()) and draw(st.booleans()):
            words.append(draw(st.sampled_from(["y", "-", "2"])))
    return draw(st.sampled_from([" ", "  ", "\t"])).join(words)


@given(
    st.lists(_redirected_command(), min_size=1, max_size=4),
    st.lists(st.sampled_from([" | ", " && ", " || ", "; ", "\n", "|", "&&"]), min_size=3),
    st.booleans(),
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lines_with_redirections_give_the_same_facts(
    commands: list[str], operators: list[str], repeat: bool
) -> None:
    if repeat:
        commands += commands[:1]
    line = commands[0] + "".join(o + c for o, c in zip(operators, commands[1:], strict=False))
    same(line)


_INNER_WORDS = st.sampled_from(["ls", "git", "rm", "-rf", "push", "x", "a=b", "-", "done", '"a b"'])


@st.composite
def _substitution(draw: st.DrawFn) -> str:
    words = st.lists(_INNER_WORDS, max_size=3).map(" ".join)
    commands = draw(st.lists(words, min_size=1, max_size=3))
    glues = st.sampled_from(["; ", " && ", " | ", " > y", " 2>&1", "\n", " "])
    glue = draw(st.lists(glues, min_size=2, max_size=2))
    script = commands[0] + "".join(g + c for g, c in zip(glue, commands[1:], strict=False))
    return draw(st.sampled_from(["", "", "", "a", "x=", '"'])) + f"$({script})"


@given(
    st.lists(
        st.lists(st.one_of(_INNER_WORDS, _substitution()), min_size=1, max_size=4),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([" | ", " && ", "; ", "\n"]),
    st.sampled_from(["", " > out", " 2>&1", " > $(date)"]),
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lines_with_substitutions_give_the_same_facts(
    commands: list[list[str]], operator: str, redirect: str
) -> None:
    line = operator.join(["ls " + " ".join(words) for words in commands]) + redirect
    same(line)
    same(f"{line}{operator}{line}")


# A statement met again with only its redirections' targets changed is read and walked
# once and given the other targets (`fastpath._retargeted`, `plain.PlainMemo`): lines
# of many such statements, with repeats and near misses mixed in, where a shape taken
# too widely or a memory keyed on too little would show.
@pytest.mark.parametrize(
    "line",
    [
        "echo start" + "".join(f"; echo $(date) > out{n}.txt" for n in range(40)),
        "; ".join(f"echo $(date) > out{n % 3}.txt" for n in range(12)),
        "; ".join(f"cat < in{n} > out{n} 2>&1" for n in range(8)),
        "; ".join(f"ls {fd}> e{n}" for n in range(3) for fd in ("", "1", "2", "3")),
        "; ".join(f"make {op} log{n}" for n in range(3) for op in (">", ">>", "&>", "<")),
        "echo $(date) > a; echo $(whoami) > b; echo $(date) > c; echo $(date) $(date) > d",
        "echo x > out1; echo x > -x; echo x > =x; echo x > 'q'; echo x > \"a b\"; echo x > b",
        "echo x > out1; echo x > $(date); echo x > o$(date); echo x > out2",
        'echo "a> b c" > out1; echo "a> b c" > out2; echo "a> b" c > out3; echo "a>" b > c',
        'echo "x> y z" >  y; echo "x> k z" >  y; echo "x> k z" > y; echo "x>  y z" >  y',
        "echo x >a; echo x > a; echo x  > a; echo x >  b; echo x\t>\tc; echo x >d ; echo x>e",
        "echo $(date) > o1 | cat; echo $(date) > o2 | cat; echo $(date) > o3 | wc",
        "ls > a && ls; ls > b; ls && ls > c; ls > d || ls; ls",
        "ls > a && ls > b; ls > c && ls > d",
        "bash -c 'echo x > a; echo x > b' > c; bash -c 'echo x > a; echo x > b' > d",
        "bash -c 'ls' > a; bash -c 'ls' > b; bash -c 'ls' > a; bash -c 'ls'",
        "sudo bash -c 'ls' > a; sudo bash -c 'ls' > b; env A=1 bash -c 'ls' > c",
        "echo $(ls > x) > a; echo $(ls > x) > b; echo $(ls > y) > c; ls > x",
        "echo $(date) > a; echo $(date); date > b; date; echo $(date) > /dev/null",
        "echo x > /dev/null; echo x > /dev/tcp/h/80; echo x > /dev/stderr; echo x > y",
        "ls x > a; PATH=/x ls x > b; ls x > c",
        "cat > a 2>&1 < b; cat > c 2>&1 < d; cat > e 2>&2 < f; cat > g 2>&1 < -h",
        "git -c core.pager=x log > a; git -c core.pager=x log > b; find . -exec rm {} + > c",
        "echo x > a=b; echo x > c; echo x > %d; echo x > @e; echo x > f,g:h+i",
        "echo x > a\necho x > b\n# c\necho x > c\n\necho y > d",
        "ls - > a; ls - > b; ls -- > c; ls > -",
        # End shapes (one target last, after a blank), told without a search
        "echo x > a; echo x > b.c; echo x > -d; echo x > =e; echo x > f=g; echo x > %h@i",
        "echo x > a; echo x > 'j'; echo x > k$(date); echo x >  l; echo x > m n; echo x >n",
        "echo 'y > z' > a; echo 'y > z' > b; ls 2> c; ls 2> d; ls 2>> e; ls 2>> f; ls < g",
        "ls && echo x > a; echo x > b; echo x >\tc; echo x >\td; echo x > e 2>&1; ls < h",
        "echo x > a > b; echo x > a > c; echo x > a; echo x > a > d; echo x > a",
    ],
)
def test_statements_differing_only_in_redirection_targets_give_the_same_facts(
    line: str,
) -> None:
    same(line)
    same(f"{line}; {line}")
    same(f"bash -c {line!r}")


_RETARGETED_BODIES = [
    "echo $(date)",
    "echo $(date) $(whoami)",
    "echo x",
    "ls $(pwd) -la",
    "cat",
    "git status",
    "sudo ls",
    "env A=1 ls",
    'echo "a> b c"',
    "bash -c 'ls > q'",
    "xargs rm",
    "-x",
]
_RETARGETED_TARGETS = [
    "out0",
    "out1",
    "a.txt",
    "/dev/null",
    "/dev/tcp/h/1",
    "-x",
    "=x",
    "'q'",
    '"m n"',
    "$(date)",
    "x=1",
    "2",
    "b@c%d",
]


@st.composite
def _retargeted_statement(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_RETARGETED_BODIES))
    for _ in range(draw(st.integers(1, 3))):
        operator = draw(st.sampled_from([">", ">>", "2>", "&>", "<", "1>", "2>>", "0<", ">&"]))
        glue = draw(st.sampled_from(["", " ", "  "]))
        text += draw(st.sampled_from([" ", " ", "\t", ""])) + operator + glue
        text += draw(st.sampled_from(_RETARGETED_TARGETS))
    if draw(st.booleans()):
        text += draw(st.sampled_from([" 2>&1", " >&2", " 2>&1 x"]))
    return text


@given(
    st.lists(_retargeted_statement(), min_size=2, max_size=12),
    st.lists(st.sampled_from(["; ", "\n", ";", " && ", " | ", " || "]), min_size=11),
    st.booleans(),
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_statements_differing_in_their_targets_give_the_same_facts(
    statements: list[str], separators: list[str], repeat: bool
) -> None:
    if repeat:
        statements += statements[::2]
    line = statements[0] + "".join(
        separator + statement
        for separator, statement in zip(itertools.cycle(separators), statements[1:])
    )
    same(line)
