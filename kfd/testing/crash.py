"""Crash trials: kill a real daemon at chosen moments, start it again, check it lost nothing.

Used by the suite (a few dozen trials) and by ``bench/crash_loop.py`` (many)::

    lab = CrashLab(root)
    async with lab:
        for _ in range(30):
            await lab.trial(signal="kill", moment="random", rng=random.Random(1))
            problems = await lab.check()

Each trial sends a message (acknowledged or not), lets a turn run (a model
answer with a tool call, the tool, a second answer, all streamed), kills the
daemon (``kill -9``, or SIGTERM and wait) at a random instant, just after a
model stream's last byte left the server, or just after ``message.send`` was
acknowledged, then starts it again. `CrashLab.check` then holds the daemon to
its durability invariants, over everything so far:

- every request the model server received has a ledger row (matched by the
  ``X-Kfd-Request`` header the daemon sends), and no row is left ``sent``;
  a row whose request never arrived can only be one a crash cut between the
  row's commit and the first byte (``interrupted``), and is counted;
- every message the daemon acknowledged is in its session's log;
- each session's log is gap-free, every ``tool.completed`` follows its
  ``tool.requested``, and every call has exactly one result;
- a SIGTERM stop exits cleanly within the shutdown deadline, and the log never
  shows a transaction left open;
- a custom command's mode is its turn's only: some trials run one (``/survey``,
  ``mode: plan``) instead of sending a message, and every session is back in the
  mode it was created in once its turns are over, crashed ones included.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from kfd import protocol as p
from kfd.agent.accounting import ENTRIES_LIMIT
from kfd.client import Client, ClientError
from kfd.testing.daemon import KfdDaemon
from kfd.testing.fixtures import git_repo
from kfd.testing.model_server import RecordedRequest, Reply, ScriptedModelServer, ScriptedToolCall

Signal = Literal["kill", "term"]
Moment = Literal["random", "last_byte", "acked"]

CONFIG = """
[model]
retry_base_s = 0.01
retry_max_s = 0.05
idle_timeout_s = 5
max_retries = 2

[daemon]
shutdown_timeout_s = 10
"""

MODE: p.Mode = "auto"
"""The mode every session is created in."""
COMMAND = "---\nmode: plan\n---\nSurvey the repository: $ARGUMENTS\n"
"""A custom command some trials run: a mode of its own for its turn."""

OPEN_TRANSACTION = ("within a transaction", "Safety level may not be changed")


def _answer(request: RecordedRequest) -> Reply:
    """A tool call for a new message, a plain answer after a tool result; both streamed."""
    messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return Reply(text="done: " + "word " * 40, chunk_chars=6, chunk_delay_s=0.002)
    return Reply(
        text="reading " * 10,
        tool_calls=[ScriptedToolCall("read", {"path": "README.md"})],
        chunk_chars=6,
        chunk_delay_s=0.002,
    )


@dataclass
class Tally:
    """What the trials did, for the report."""

    trials: int = 0
    acknowledged: int = 0
    requests: int = 0
    rows: int = 0
    unsent_rows: int = 0
    """Rows of requests that never reached the server (a kill between commit and send)."""
    clean_stops: int = 0
    by_moment: dict[str, int] = field(default_factory=dict)


class CrashLab:
    """A scripted model server, a daemon and a workspace to crash trials in."""

    def __init__(self, root: Path, *, config: str = CONFIG) -> None:
        self.root = root
        self.server = ScriptedModelServer(responder=_answer)
        self.server.start()
        self.daemon = KfdDaemon(model=self.server, config=config, root=root / "kfd")
        (self.daemon.config_dir / "commands").mkdir(parents=True, exist_ok=True)
        (self.daemon.config_dir / "commands" / "survey.md").write_text(COMMAND)
        self.workspace = git_repo(root / "repo")
        self.acknowledged: list[tuple[str, str]] = []
        """(session, message id) of every message.send that returned ok."""
        self.sessions: list[str] = []
        self.tally = Tally()
        self.stop_failures: list[str] = []

    async def __aenter__(self) -> CrashLab:
        await asyncio.to_thread(self.daemon.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.daemon.close)
        self.server.stop()

    async def trial(self, signal: Signal, moment: Moment, rng: random.Random) -> None:
        """One message, one crash at ``moment``, one restart."""
        self.tally.trials += 1
        key = f"{signal}/{moment}"
        self.tally.by_moment[key] = self.tally.by_moment.get(key, 0) + 1
        if not self.daemon.running:
            await asyncio.to_thread(self.daemon.start)
        before = len(self.server.requests)
        async with await self.daemon.client(name="crash-lab") as client:
            if not self.sessions or rng.random() < 0.3:
                info = await client.create_session(self.workspace, mode=MODE)
                self.sessions.append(info.id)
            session = rng.choice(self.sessions)
            text = f"trial {self.tally.trials}"
            client_msg_id = f"t{self.tally.trials}"
            try:
                if rng.random() < 0.3:
                    sent = await client.run_command(
                        session, "survey", text, client_msg_id=client_msg_id
                    )
                else:
                    sent = await client.send(session, text, client_msg_id=client_msg_id)
            except ClientError:
                sent = None  # the daemon was still busy closing up: not acknowledged
            if sent is not None:
                self.acknowledged.append((session, sent.message_id))
                self.tally.acknowledged += 1
            if moment == "acked":
                await asyncio.sleep(rng.random() * 0.005)
            elif moment == "last_byte":
                index = before + rng.randrange(2)
                try:
                    request = await self.server.wait_for_request_async(index, timeout=10)
                    await request.wait_done_async(timeout=10)
                except TimeoutError:
                    pass
                await asyncio.sleep(rng.random() * 0.015)
            else:
                await asyncio.sleep(rng.random() * 0.3)
        if signal == "kill":
            await asyncio.to_thread(self.daemon.kill)
        else:
            started = time.monotonic()
            code = await asyncio.to_thread(self.daemon.stop, 30.0)
            took = time.monotonic() - started
            if code != 0:
                self.stop_failures.append(f"trial {self.tally.trials}: SIGTERM exit status {code}")
            elif took > 15:
                self.stop_failures.append(f"trial {self.tally.trials}: stop took {took:.1f} s")
            else:
                self.tally.clean_stops += 1
        await asyncio.to_thread(self.daemon.start)
        await self.settle()

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until no session runs a turn (messages carried over a restart run first)."""
        deadline = time.monotonic() + timeout
        async with await self.daemon.client(name="crash-lab") as client:
            while (await client.status()).running:
                if time.monotonic() > deadline:
                    raise TimeoutError("sessions still running after the restart")
                await asyncio.sleep(0.05)

    async def check(self) -> list[str]:
        """Every violated invariant, in words (empty: all hold), read through the
        daemon as any client would: the ledger and each session's whole log."""
        problems = list(self.stop_failures)
        async with await self.daemon.client(name="crash-lab") as client:
            cost: p.CostResult = await client.request(p.CostQuery(id="", entries=ENTRIES_LIMIT))
            rows: dict[str, tuple[str, int]] = {
                entry.id: (entry.state, entry.retries) for entry in cost.entries
            }
            if cost.total.requests > len(rows):
                problems.append(f"{cost.total.requests} ledger rows, only {len(rows)} read")
            events: dict[str, list[tuple[int, str, bytes]]] = {}
            for session in self.sessions:
                events[session] = await _log(client, session)
                mode = (await client.session(session)).mode
                if mode != MODE:
                    problems.append(f"session {session} was left in mode {mode}, not {MODE}")
        problems += self._check_ledger(rows)
        problems += self._check_messages(events)
        problems += self._check_logs(events)
        log = self.daemon.log_text()
        problems += [
            f"the log shows an open transaction: {m!r}" for m in OPEN_TRANSACTION if m in log
        ]
        return problems

    def _check_ledger(self, rows: dict[str, tuple[str, int]]) -> list[str]:
        problems = []
        attempts: dict[str, int] = {}
        for request in self.server.requests:
            label = request.headers.get("x-kfd-request", "")
            ledger_id = label.rsplit(".", 1)[0]
            if not ledger_id:
                problems.append(f"request {request.index} carries no ledger id")
                continue
            attempts[ledger_id] = attempts.get(ledger_id, 0) + 1
        self.tally.requests = len(self.server.requests)
        self.tally.rows = len(rows)
        for ledger_id, count in attempts.items():
            if ledger_id not in rows:
                problems.append(
                    f"the server received request {ledger_id} but the ledger has no row"
                )
            elif rows[ledger_id][1] + 1 < count:
                problems.append(
                    f"{ledger_id}: {count} attempts received, {rows[ledger_id][1]} retries recorded"
                )
        unsent = 0
        for ledger_id, (state, _) in rows.items():
            if state == "sent":
                problems.append(f"ledger row {ledger_id} is still 'sent' after recovery")
            if ledger_id not in attempts:
                if state != "interrupted":
                    problems.append(
                        f"ledger row {ledger_id} ({state}) has no request at the server"
                    )
                unsent += 1
        self.tally.unsent_rows = unsent
        return problems

    def _check_messages(self, events: dict[str, list[tuple[int, str, bytes]]]) -> list[str]:
        problems = []
        for session, message_id in self.acknowledged:
            found = any(
                kind in ("message.user", "message.queued")
                and json.loads(body).get("message_id") == message_id
                for _, kind, body in events.get(session, [])
            )
            if not found:
                problems.append(f"acknowledged message {message_id} of {session} is not in its log")
        return problems

    def _check_logs(self, events: dict[str, list[tuple[int, str, bytes]]]) -> list[str]:
        problems = []
        for session, log in events.items():
            seqs = [seq for seq, _, _ in log]
            if seqs != list(range(1, len(seqs) + 1)):
                problems.append(f"{session}: the log has gaps ({seqs[:5]}...)")
            requested: set[str] = set()
            completed: dict[str, int] = {}
            for _, kind, body in log:
                data: dict[str, Any] = json.loads(body)
                if kind == "tool.requested":
                    requested.add(data["call_id"])
                elif kind == "tool.completed":
                    call = data["call_id"]
                    if call not in requested:
                        problems.append(f"{session}: tool.completed {call} without its request")
                    completed[call] = completed.get(call, 0) + 1
            for call in requested:
                if completed.get(call, 0) != 1:
                    problems.append(f"{session}: call {call} has {completed.get(call, 0)} results")
        return problems


async def _log(client: Client, session: str) -> list[tuple[int, str, bytes]]:
    """(seq, type, body) of every durable event of ``session``, from the daemon."""
    found: list[tuple[int, str, bytes]] = []
    since = 0
    while True:
        result: p.AttachResult = await client.request(
            p.SessionAttach(id="", session=session, since_seq=since)
        )
        for raw in result.events:
            body = bytes(raw)
            header = json.loads(body)
            found.append((int(header["seq"]), str(header["type"]), body))
        if not result.more or not found:
            return found
        since = found[-1][0]
