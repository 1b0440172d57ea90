"""How a tool call is decided: a pure function of the facts (`kfd.policy.facts`).

No I/O here: paths arrive resolved and bash lines analyzed, so every decision
is a plain function call a test can make. A bash line is judged by
`kfd.policy.judge_bash`, any other tool by `kfd.policy.judge_tool`, both
weighing paths with `kfd.policy.judge_paths`. Whatever the order, the
strictest finding wins (deny over ask over allow), and every verdict names
the rule and its source, or the mode, that decided it
(`kfd.policy.verdicts`).

Plugin policies vote after the built-in decision; `combine` keeps the
strictest verdict, so no plugin can loosen a built-in "ask".
"""

from __future__ import annotations

from kfd.api import PolicyRequest, Verdict
from kfd.policy import reading
from kfd.policy.facts import CallFacts, PathFact
from kfd.policy.judge_bash import allowing_rule, decide_bash, forget_programs, read_only
from kfd.policy.judge_tool import decide_tool
from kfd.policy.programs.argv import parse_argv
from kfd.policy.rules import RuleError, SourcedRule, parse_rule
from kfd.policy.shell.unwrap import forget_unwrapped
from kfd.policy.verdicts import Outcome, combine

__all__ = [
    "Outcome",
    "allowing_rule",
    "combine",
    "decide",
    "decide_facts",
    "forget_words",
    "read_only",
]


def decide(request: PolicyRequest) -> Verdict:
    """The built-in verdict from the request alone (no rules, no bash analysis)."""
    paths = [PathFact.of(resolved, request.workspace) for resolved in request.paths]
    rules = []
    for text in request.session_rules:
        try:
            rules.append(SourcedRule(parse_rule(text), "allow", "session"))
        except RuleError:
            continue
    return decide_facts(CallFacts(request=request, paths=paths, rules=rules)).verdict()


def decide_facts(facts: CallFacts) -> Outcome:
    """The built-in decision for one tool call."""
    if facts.request.tool == "bash" and facts.line is not None:
        return decide_bash(facts, facts.line)
    return decide_tool(facts)


def forget_words() -> None:
    """Drop what decisions keep about the words of commands seen (their programs'
    readings): for benchmarks, so a "new" command costs what a command never seen
    costs. Rule tables, path matchers and directory listings are kept: a daemon has
    them warm."""
    parse_argv.cache_clear()
    reading.forget()
    forget_programs()
    forget_unwrapped()
