"""``kfd trust [DIR]``: trust a repository's ``.kfd/config.toml`` at its exact content.

Until then the file only narrows rights: its ``ask`` and ``deny`` rules
apply, its ``allow`` rules wait. ``kfd trust`` shows what the file would
grant and asks before trusting exactly the content it showed (the daemon
refuses if the file changed in between); ``--yes`` trusts without asking
(scripts), ``--revoke`` takes the trust back, ``--list`` shows every trusted
file and which of them changed since.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import one_line, say

EXIT_NOT_TRUSTED = 1


def add_parser(commands: Any) -> None:
    trust = commands.add_parser(
        "trust",
        help="trust a repository's .kfd/config.toml (until then it only narrows rights)",
        description=(
            "A repository's .kfd/config.toml only narrows rights (its ask and deny rules "
            "apply) until you trust its exact content; then its allow rules apply too. "
            "Any change to the file makes it untrusted again."
        ),
    )
    trust.add_argument("dir", nargs="?", default=".", help="the project (default: .)")
    what = trust.add_mutually_exclusive_group()
    what.add_argument("--yes", "-y", action="store_true", help="trust without asking")
    what.add_argument("--revoke", action="store_true", help="take the trust back")
    what.add_argument("--list", action="store_true", help="every trusted file")
    trust.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_trust, args)


async def _trust(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-trust", spawn=True) as client:
        if args.list:
            return _print_list(await client.trusted_files(), json=args.json)
        cwd = os.path.abspath(args.dir)
        if not os.path.isdir(cwd):
            say(f"kfd: {args.dir!r} is not a directory", file=sys.stderr)
            return 2
        if args.revoke:
            info = await client.set_trust(cwd, trusted=False)
            _print(info, json=args.json, revoked=True)
            return 0
        info = await client.trust(cwd)
        if info.trusted or not info.exists or info.problem or not info.grants:
            _print(info, json=args.json)
            return 0 if info.trusted or not info.problem else EXIT_NOT_TRUSTED
        if not args.json:
            _print(info, json=False)
        if not args.yes and not _confirm(info):
            if args.json:
                _print(info, json=True)
            else:
                say(f"not trusted; `kfd trust --yes {args.dir}` trusts it without asking")
            return EXIT_NOT_TRUSTED
        trusted = await client.set_trust(cwd, info.sha256)
        _print(trusted, json=args.json, changed=True)
        return 0


def _confirm(info: p.TrustInfo) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(f"Trust {one_line(info.path)} as it is now? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _print(info: p.TrustInfo, *, json: bool, changed: bool = False, revoked: bool = False) -> None:
    if json:
        sys.stdout.buffer.write(msgspec.json.encode(info) + b"\n")
        return
    if revoked:
        say(f"{info.path}: not trusted any more; its allow rules no longer apply")
        return
    if not info.exists:
        say(f"{info.project} has no .kfd/config.toml: there is nothing to trust")
        return
    if info.problem:
        say(f"{info.path} does not load: {info.problem}")
        return
    if changed:
        say(f"trusted {info.path} (sha256 {info.sha256[:12]}…); a change to it asks again")
    elif info.trusted:
        say(f"{info.path} is trusted as it is (sha256 {info.sha256[:12]}…)")
    else:
        state = "changed since you trusted it" if info.pinned else "not trusted"
        say(f"{info.path} is {state} (sha256 {info.sha256[:12]}…)")
    if info.grants and not changed:
        say("trusting it applies:" if not info.trusted else "it applies:")
        for grant in info.grants:
            say(f"  {grant}")
    for line in info.ignored:
        say(f"ignored: {line}")


def _print_list(listed: p.TrustListResult, *, json: bool) -> int:
    if json:
        sys.stdout.buffer.write(msgspec.json.encode(listed) + b"\n")
        return 0
    if not listed.files:
        say("no file is trusted; `kfd trust DIR` trusts a project's .kfd/config.toml")
        return 0
    changed = set(listed.changed)
    for pin in listed.files:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(pin.trusted_at))
        note = "  (changed since: not trusted now)" if pin.path in changed else ""
        by = f" by {pin.by}" if pin.by else ""
        say(f"{pin.path}  {pin.sha256[:12]}…  {when}{by}{note}")
    return 0
