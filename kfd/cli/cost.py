"""``kfd cost``, ``kfd models`` and ``kfd budget``: what was spent, on what, and the limits.

Every figure comes from the daemon's ledger (``cost.query``); totals are sums
of its rows. Costs are kfd's estimates from the model table unless the
gateway confirmed them.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import say

EXIT_USAGE = 2

_RELATIVE = re.compile(r"(\d{1,4})d")


def add_parsers(commands: Any) -> None:
    cost = commands.add_parser("cost", help="what model requests cost, from the ledger")
    cost.add_argument("--session", help="only this session (id or unique prefix)")
    cost.add_argument(
        "--since",
        metavar="DATE",
        help="from DATE: YYYY-MM-DD, YYYY-MM-DDTHH:MM, today, yesterday, month, or Nd (N days)",
    )
    cost.add_argument("--until", metavar="DATE", help="up to DATE (excluded), same forms")
    cost.add_argument(
        "--by", choices=("session", "model", "day"), default="model", help="group rows (model)"
    )
    cost.add_argument(
        "--entries", type=int, default=0, metavar="N", help="also list the last N requests"
    )
    cost.add_argument("--json", action="store_true", help="print JSON")

    models = commands.add_parser("models", help="known models: context windows and prices")
    models.add_argument("--json", action="store_true", help="print JSON")

    budget = commands.add_parser("budget", help="show or set a session's spending limit")
    budget.add_argument("session", help="session id or unique prefix")
    budget.add_argument(
        "usd", nargs="?", help="the limit in US dollars, or `off` for the config's [budget]"
    )
    budget.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    handler = {"cost": _cost, "models": _models, "budget": _budget}[args.command]
    return execute(handler, args)


# -- kfd cost ---------------------------------------------------------------


def parse_date(text: str, now: datetime | None = None) -> float:
    """A Unix time from what a user types; ValueError naming the accepted forms."""
    now = now or datetime.now().astimezone()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    word = text.strip().lower()
    if word == "today":
        return midnight.timestamp()
    if word == "yesterday":
        return (midnight - timedelta(days=1)).timestamp()
    if word == "month":
        return midnight.replace(day=1).timestamp()
    if match := _RELATIVE.fullmatch(word):
        return (midnight - timedelta(days=int(match[1]))).timestamp()
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date; use YYYY-MM-DD, YYYY-MM-DDTHH:MM, today, yesterday, "
            "month or Nd"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the user meant it
    return when.timestamp()


async def _cost(args: argparse.Namespace) -> int:
    try:
        since = parse_date(args.since) if args.since else None
        until = parse_date(args.until) if args.until else None
    except ValueError as exc:
        say(f"kfd cost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.entries < 0:
        say("kfd cost: --entries takes 0 or more", file=sys.stderr)
        return EXIT_USAGE
    query = p.CostQuery(
        id="", session=args.session, since=since, until=until, by=args.by, entries=args.entries
    )
    from kfd.cli import remotes

    async with await remotes.connect(args, "kfd-cost") as client:
        result: p.CostResult = await client.request(query)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(cost_json(result, args.by)) + b"\n")
    else:
        _print_cost(result, args.by, args.session)
    return 0


def cost_json(result: p.CostResult, by: str) -> dict[str, Any]:
    """The ``--json`` object: totals at the top, one row per group, budgets, entries."""

    def figures(row: p.CostRow) -> dict[str, Any]:
        return {
            "total_usd": row.cost_usd,
            "confirmed_usd": row.confirmed_usd,
            "estimated_usd": row.estimated_usd,
            "requests": row.requests,
            "input_tokens": row.input_tokens,
            "cached_input_tokens": row.cached_input_tokens,
            "cache_write_tokens": row.cache_write_tokens,
            "output_tokens": row.output_tokens,
            "reasoning_tokens": row.reasoning_tokens,
            "errors": row.errors,
            "retries": row.retries,
            "unpriced": row.unpriced,
            "interrupted": row.interrupted,
            "in_flight": row.in_flight,
        }

    data = figures(result.total)
    data["by"] = by
    data["rows"] = [{by: row.key, **figures(row)} for row in result.rows]
    data["budgets"] = msgspec.to_builtins(result.budgets)
    if result.entries:
        data["entries"] = msgspec.to_builtins(result.entries)
    return data


def _print_cost(result: p.CostResult, by: str, session: str | None) -> None:
    total = result.total
    if not total.requests:
        say("no model requests in the ledger" + (f" for session {session}" if session else ""))
    else:
        width = max([len(by), 5, *(len(_short(row.key)) for row in result.rows)])
        say(
            f"{by:<{width}}  {'requests':>8}  {'input':>11}  {'cached':>11}  "
            f"{'output':>10}  {'cost':>10}"
        )
        for row in [*result.rows, msgspec.structs.replace(total, key="total")]:
            say(
                f"{_short(row.key):<{width}}  {row.requests:>8}  {row.input_tokens:>11,}  "
                f"{row.cached_input_tokens:>11,}  {row.output_tokens:>10,}  "
                f"{_usd(row.cost_usd):>10}"
            )
        notes = [f"gateway-confirmed {_usd(total.confirmed_usd)}"]
        notes.append(f"estimated {_usd(total.estimated_usd)}")
        if total.unpriced:
            notes.append(
                f"{total.unpriced} request(s) to models without a price, counted as free "
                '(add [models."<name>"] prices to config.toml)'
            )
        if total.errors:
            notes.append(f"{total.errors} failed or interrupted request(s)")
        if total.interrupted:
            notes.append(f"{total.interrupted} interrupted (tokens estimated)")
        if total.in_flight:
            notes.append(f"{total.in_flight} still running (at their estimate)")
        say("; ".join(notes))
    for budget in result.budgets:
        share = budget.spent_usd / budget.limit_usd if budget.limit_usd else 0.0
        say(
            f"budget {budget.budget}: {_usd(budget.spent_usd)} of {_usd(budget.limit_usd)} "
            f"({share:.0%})"
        )
    for entry in result.entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.ts))
        what = entry.error.splitlines()[0][:60] if entry.error else entry.cost_source
        state = "" if entry.state == "completed" else f"{entry.state}  "
        say(
            f"{when}  {entry.id}  {entry.session}  {entry.model}  in {entry.input_tokens:,} "
            f"out {entry.output_tokens:,}{' (estimated)' if entry.estimated else ''}  "
            f"{_usd(entry.cost_usd)}  {state}{what}"
        )


def _short(key: str) -> str:
    return key or "(none)"


def _usd(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


# -- kfd models ---------------------------------------------------------------


async def _models(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-models", spawn=True) as client:
        result: p.ModelListResult = await client.request(p.ModelList(id=""))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        return 0
    say(f"provider {result.provider}, model {result.default}  (prices: USD per million tokens)")
    width = max(len(m.name) for m in result.models) if result.models else 10
    say(f"  {'model':<{width}}  {'window':>9}  {'input':>7}  {'cached':>7}  {'output':>7}")
    for model in result.models:
        mark = "*" if model.name == result.default else " "
        window = f"{model.context_window:,}" if model.context_window else "?"
        say(
            f"{mark} {model.name:<{width}}  {window:>9}  {_price(model.input):>7}  "
            f"{_price(model.cached_input):>7}  {_price(model.output):>7}"
        )
    return 0


def _price(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"


# -- kfd budget ---------------------------------------------------------------


async def _budget(args: argparse.Namespace) -> int:
    from kfd.client import Client

    usd: float | None = None
    if args.usd is not None and args.usd.lower() != "off":
        try:
            usd = float(args.usd.lstrip("$"))
        except ValueError:
            say(f"kfd budget: {args.usd!r} is not an amount; give USD or `off`", file=sys.stderr)
            return EXIT_USAGE
    async with await Client.connect(name="kfd-budget", spawn=True) as client:
        if args.usd is not None:
            changed: p.SessionResult = await client.request(
                p.SessionSetBudget(id="", session=args.session, usd=usd)
            )
            args.session = changed.session.id
        result: p.CostResult = await client.request(p.CostQuery(id="", session=args.session))
    states = [b for b in result.budgets if b.budget == "session"]
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result.budgets) + b"\n")
        return 0
    if not states:
        say(f"session {args.session}: no budget; spent {_usd(result.total.cost_usd)}")
    for state in states:
        say(
            f"session {state.session}: {_usd(state.spent_usd)} spent of a "
            f"{_usd(state.limit_usd)} budget"
        )
    return 0
