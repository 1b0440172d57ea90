"""``kfd chat matrix|slack``: settings, credentials, state, then the bridge."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfd.client import DaemonSet, Remote, state_dir
from kfd_chat.adapter import Adapter, AdapterError
from kfd_chat.bridge import FRONTEND_NAME, Access, Bridge
from kfd_chat.settings import ChatSettings, SettingsError, parse
from kfd_chat.state import StateFile

log = logging.getLogger("kfd_chat")


def run(settings: Mapping[str, Any], args: argparse.Namespace) -> int:
    """Entry point (group ``kfd.frontends``, name ``chat``): ``kfd chat ADAPTER``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kfd chat: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        parsed = parse(settings)
        adapter, access = make_adapter(parsed, args.adapter, os.environ)
    except SettingsError as exc:
        print(f"kfd: {exc}", file=sys.stderr)
        return 2
    store = StateFile(_state_path(parsed, args.adapter))
    try:
        store.load()
    except ValueError as exc:
        log.warning("%s; starting afresh", exc)
    remotes: list[Remote | None] = getattr(args, "remotes", None) or [None]
    return asyncio.run(_main(adapter, access, store, remotes))


def make_adapter(
    settings: ChatSettings, name: str, environ: Mapping[str, str]
) -> tuple[Adapter, Access]:
    """The adapter named ``name``, its credentials read from the environment."""
    workspace = settings.workspace or str(Path.home())
    if name == "matrix":
        matrix = settings.matrix
        if matrix is None:
            raise SettingsError("[chat.matrix] is missing: homeserver, user_id, rooms, allow")
        token = _secret(environ, matrix.token_env, "[chat.matrix] token_env")
        from kfd_chat.matrix import MatrixAdapter

        adapter: Adapter = MatrixAdapter(matrix, token)
        rooms, allow, notify_room = matrix.rooms, matrix.allow, matrix.notify_room
        linger = matrix.tool_linger_s
    elif name == "slack":
        slack = settings.slack
        if slack is None:
            raise SettingsError("[chat.slack] is missing: channels, allow")
        app_token = _secret(environ, slack.app_token_env, "[chat.slack] app_token_env")
        bot_token = _secret(environ, slack.bot_token_env, "[chat.slack] bot_token_env")
        from kfd_chat.slack import SlackAdapter

        adapter = SlackAdapter(slack, app_token, bot_token)
        rooms, allow, notify_room = slack.channels, slack.allow, slack.notify_room
        linger = slack.tool_linger_s
    else:
        raise SettingsError(f"no chat adapter {name!r}: matrix or slack")
    if not allow:
        raise SettingsError(f"[chat.{name}] allow is empty: list the user ids the bot obeys")
    if not rooms:
        raise SettingsError(f"[chat.{name}] lists no rooms to serve")
    access = Access(
        rooms=set(rooms),
        allow=set(allow),
        notify_room=notify_room,
        workspace=workspace,
        mode=settings.mode,
        tool_linger_s=linger,
    )
    return adapter, access


def _secret(environ: Mapping[str, str], variable: str, key: str) -> str:
    value = environ.get(variable, "")
    if not value:
        raise SettingsError(
            f"${variable} is not set ({key}); credentials come from the environment"
        )
    return value


def _state_path(settings: ChatSettings, adapter: str) -> Path:
    if settings.state_file:
        return Path(settings.state_file).expanduser()
    return state_dir() / f"chat-{adapter}.json"


async def _main(
    adapter: Adapter, access: Access, store: StateFile, remotes: list[Remote | None]
) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    code = 0
    # This machine's daemon is started if none runs; remote ones are waited for.
    daemons = DaemonSet(remotes, FRONTEND_NAME, spawn=True, log=log)
    try:
        await daemons.connect(daemons.labels[0])  # where sessions start: wait for it
        try:
            await Bridge(adapter, daemons, store, access).run()
        except* AdapterError as group:
            for exc in group.exceptions:
                log.error("%s", exc)
            code = 1
    except asyncio.CancelledError:
        pass
    finally:
        await daemons.close()
        await adapter.close()
        with contextlib.suppress(OSError):
            store.save()
    return code
