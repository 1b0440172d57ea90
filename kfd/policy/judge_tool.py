"""Judging a call of any tool but bash: its rules, its paths, its domains, the mode.

Pure (no I/O). A tool that reaches the network (`kfd.api.Tool.network`) is
egress, whatever its read-only flag: data leaves with the request.

- A rule naming the tool (``web_fetch``, ``mcp__github__*``), the exact call
  (``write(notes.md)``, the rule "allow for this session" keeps), one of its
  paths (`kfd.policy.judge_paths`) or one of its domains
  (``web_fetch(domain:docs.python.org)``, ``*(domain:*.evil.example)``) decides.
- A network tool reaching a domain no rule allows asks in the ``default`` and
  ``accept-edits`` modes (the answers keep a rule per domain), is denied in
  ``plan``, and goes out in ``auto``; after untrusted content was read in the
  turn it asks in every mode unless a rule of the user names the domain.
- Otherwise the mode decides: ``plan`` denies what is not read-only,
  read-only tools run, ``accept-edits`` runs file edits, ``auto`` runs all.
"""

from __future__ import annotations

from kfd.policy.facts import CallFacts
from kfd.policy.judge_paths import weigh_paths
from kfd.policy.rules import SourcedRule, domain_match, normal_host
from kfd.policy.verdicts import Findings, Outcome, mode_outcome, outcome

__all__ = ["decide_tool", "weigh_untrusted"]


def decide_tool(facts: CallFacts) -> Outcome:
    """The built-in decision for one call of a tool other than bash."""
    request = facts.request
    found = Findings()
    allowed: SourcedRule | None = None
    for sourced in facts.rules:
        rule = sourced.rule
        if not rule.names(request.tool) or rule.domain is not None:
            continue
        if rule.spec is not None and rule.text != request.session_rule:
            continue  # a path rule: weighed per path below
        what = f"`{request.tool}`" if rule.spec is None else "this call"
        if found.rule(sourced, what) and allowed is None:
            allowed = sourced
    exact = allowed is not None and allowed.rule.text == request.session_rule
    paths_allowed = weigh_paths(facts, facts.paths, found, exact=exact)
    if allowed is None and paths_allowed is not None:
        allowed = paths_allowed
    egress: SourcedRule | None = None
    if request.network:
        egress = _weigh_domains(facts, found, allowed)
        allowed = allowed or egress
    if request.mode == "plan" and not request.read_only:
        found.deny(
            f"plan mode: `{request.tool}` changes things and only read-only tools run; "
            "describe the change instead, or ask the user to switch modes"
        )
    weigh_untrusted(facts, found, allowed, mutating=not request.read_only)
    if found.refused is not None:
        return found.refused
    if allowed is not None:
        return outcome("allow", f"allowed by {allowed.describe()}", allowed)
    return mode_outcome(request, request.read_only)


def _weigh_domains(
    facts: CallFacts, found: Findings, allowed: SourcedRule | None
) -> SourcedRule | None:
    """Domain rules for a network tool; the rule allowing every domain it reaches, if one."""
    request = facts.request
    domains = facts.domains
    tool = request.tool
    allows: dict[str, SourcedRule] = {}
    for sourced in facts.rules:
        rule = sourced.rule
        if rule.domain is None or not rule.names(tool):
            continue
        kept = sourced.source in ("session", "always")  # an approved domain, not a pattern
        for domain in domains or ():
            if kept:
                matches = normal_host(rule.domain) == normal_host(domain)
            else:
                matches = domain_match(rule.domain, f"https://{domain}/")
            if matches and found.rule(sourced, f"`{tool}` to {domain}"):
                allows.setdefault(domain, sourced)
    if allowed is not None:
        return None  # the tool itself (or this exact call) is allowed by a rule
    if domains and all(domain in allows for domain in domains):
        return next(iter(allows.values()))
    new = [d for d in domains or () if d not in allows]
    target = ", ".join(new) if new else "a host it does not name"
    if request.mode == "plan":
        found.deny(
            f"plan mode: `{tool}` would send a request to {target}, which no rule allows; "
            f"allow the domain first (a rule such as {tool}(domain:{new[0] if new else '…'}))"
        )
    elif request.mode != "auto":
        found.ask(
            f"`{tool}` sends a request to {target}, which no rule allows yet: what it sends "
            "leaves the machine (allow the domain for this session or always)"
        )
    return None


def weigh_untrusted(
    facts: CallFacts, found: Findings, allowed: SourcedRule | None, *, mutating: bool
) -> None:
    """After untrusted content, only an explicit rule allows what changes or reaches out."""
    request = facts.request
    if not facts.untrusted or not (mutating or request.network):
        return
    if allowed is not None and allowed.source != "built-in":
        return
    if found.decision == "deny":
        return
    found.ask(
        f"untrusted content from `{facts.untrusted}` was read this turn: kfd asks before "
        f"`{request.tool}` {'reaches the network' if request.network else 'changes things'} "
        "for the rest of the turn"
    )
