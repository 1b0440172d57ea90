"""Remote attach across real network namespaces: CURVE over TCP, keys, a cut link.

The daemon runs in namespace A, clients in namespace B, joined by a veth pair
with addresses only those namespaces have (`kfd.testing.netns`). Where
namespaces cannot be made (no root), the same tests run on 127.0.0.1 through
a relay that can play dead, and say so (a warning in the summary).
Heartbeats are 0.2 s, so a dead link is noticed in 0.6 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from kfd import protocol as p
from kfd.client import (
    Client,
    ConnectionLost,
    ConnectionRestored,
    DaemonKeyChanged,
    RemoteRefused,
    RequestFailed,
)
from kfd.client.keys import load
from kfd.client.remote import pin
from kfd.daemon.bus import HARD_FRAME_BYTES
from kfd.daemon.outbox import ITEM_OVERHEAD
from kfd.protocol import MAX_REQUEST_BYTES
from kfd.remote import is_key, parse_endpoint
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.events import collect_until, of_type, turn_completed
from kfd.testing.netns import (
    NAME_PREFIX,
    Link,
    SideLoop,
    make_link,
    remove_stale_namespaces,
    why_no_namespaces,
)
from kfd.testing.remote import RemoteWorld

HERE = Path(__file__).parent
TEXT = "The link went down and came back, and this answer arrived whole: " + " ".join(
    f"w{i}" for i in range(120)
)


@pytest.fixture
def link() -> Iterator[Link]:
    made = make_link()
    if made.kind != "network namespaces":
        warnings.warn(f"remote tests ran over a {made.kind}", stacklevel=1)
    yield made
    made.close()


@pytest.fixture
def model(link: Link) -> Iterator[ScriptedModelServer]:
    server = link.on_daemon_side(lambda: ScriptedModelServer().start())
    yield server
    server.stop()


@pytest.fixture
def world(
    link: Link, model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RemoteWorld]:
    with RemoteWorld(link, model) as made:
        # In-process clients read their keys and pins where the client's kfd would.
        for key in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
            monkeypatch.setenv(key, made.env[key])
        yield made


@pytest.fixture
def side(link: Link) -> Iterator[SideLoop]:
    loop = SideLoop(link)
    yield loop
    loop.close()


async def lines_of(process: asyncio.subprocess.Process) -> AsyncIterator[dict]:
    assert process.stdout is not None
    while raw := await process.stdout.readline():
        yield json.loads(raw)


async def test_a_turn_watched_from_another_host_is_shown_once_in_order_across_a_cut_link(
    world: RemoteWorld, model: ScriptedModelServer, link: Link, workspace: Path
) -> None:
    model.add(Reply(text=TEXT, chunk_chars=6, chunk_delay_s=0.02))
    argv = world.kfd_argv("run", "--remote", "bb", "--cwd", str(workspace), "--json", "go")
    run = await asyncio.create_subprocess_exec(
        *argv, env=world.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    seen: list[dict] = []
    async with await world.daemon.client("watcher") as local:
        async with asyncio.timeout(60):
            async for line in lines_of(run):
                seen.append(line)
                if line["type"] == "message.delta":
                    break
            session = seen[0]["session"]
            # Cut mid-stream; the daemon finishes the turn while the link is down.
            link.cut()
            async with await local.attach(session, since_seq=seen[-1]["seq"]) as view:
                await collect_until(view, turn_completed, timeout=30)
            async for line in lines_of(run):
                seen.append(line)
                if line["type"] == "client.connection_lost":
                    break
            link.restore()
            async for line in lines_of(run):
                seen.append(line)
            assert await run.wait() == 0, (await run.stderr.read()).decode()
        async with await local.attach(session) as replay:
            log = await collect_until(replay, turn_completed)

    kinds = [line["type"] for line in seen]
    assert "client.connection_lost" in kinds and "client.connection_restored" in kinds
    durable = [(line["type"], line["seq"]) for line in seen if _durable(line)]
    expected = [
        (type(event).__struct_config__.tag, event.seq)
        for event in log
        if isinstance(event, p.Event) and not event.ephemeral and event.seq >= durable[0][1]
    ]
    assert durable == expected  # every durable event once, in order, none missing
    completed = [line for line in seen if line["type"] == "message.completed"]
    assert [line["text"] for line in completed] == [TEXT]


def _durable(line: dict) -> bool:
    return not line["type"].startswith("client.") and not line.get("ephemeral", False)


async def test_an_approval_is_answered_from_another_host_and_names_the_key_that_answered(
    world: RemoteWorld, model: ScriptedModelServer, side: SideLoop, workspace: Path
) -> None:
    model.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch made-remotely"})]),
        Reply(text="made it"),
    )

    async def approve_remotely() -> p.ApprovalResolved:
        # A name that tries to pass for another key's owner.
        async with await Client.connect(name="phone (bob)", remote=world.remote()) as client:
            info = await client.create_session(str(workspace))
            async with await client.attach(info.id) as view:
                await client.send(info.id, "make the file")
                [*_, asked] = await collect_until(view, of_type(p.ApprovalRequested), 30)
                assert isinstance(asked, p.ApprovalRequested)
                await client.respond(info.id, asked.approval_id, "allow")
                items = await collect_until(view, turn_completed, 30)
        [resolved] = [item for item in items if isinstance(item, p.ApprovalResolved)]
        return resolved

    resolved = await side.run_async(approve_remotely(), timeout=60)
    assert resolved.decision == "allow"
    assert resolved.by is not None
    assert resolved.by.key == "alice laptop"
    assert resolved.by.name == "phone [bob] (alice laptop)"
    assert (workspace / "made-remotely").exists()
    assert world.known_daemons.read_text().split()[:2] == [world.endpoint, world.daemon_key()]


async def test_strangers_wrong_keys_plaintext_and_garbage_are_refused_while_clients_work(
    world: RemoteWorld, model: ScriptedModelServer, side: SideLoop, link: Link, workspace: Path
) -> None:
    stranger = world.make_keys(world.root / "stranger-keys", "mallory")
    model.add(Reply(text="still here"))

    async def scenario() -> dict[str, object]:
        found: dict[str, object] = {}
        async with await Client.connect(name="alice", remote=world.remote()) as alice:
            info = await alice.create_session(str(workspace))
            # A key the daemon does not know.
            keys = world.client_config / "keys"
            os.rename(keys, world.root / "alice-keys")
            os.rename(world.root / "stranger-keys", keys)
            try:
                await Client.connect(name="mallory", remote=world.remote(), timeout=5)
            except RemoteRefused as exc:
                found["stranger"] = str(exc)
            finally:
                os.rename(keys, world.root / "stranger-keys")
                os.rename(world.root / "alice-keys", keys)
            # Our key, but a daemon key that is not the daemon's.
            wrong = world.make_keys(world.root / "wrong", "x").public
            try:
                await Client.connect(name="a", remote=world.remote(daemon_key=wrong), timeout=5)
            except DaemonKeyChanged as exc:
                found["wrong_daemon_key"] = str(exc)
            found["plaintext"] = await _plaintext_zmtp(world)
            found["garbage"] = await _garbage(world)
            # Alice never noticed: requests and events go on.
            async with await alice.attach(info.id) as view:
                await alice.send(info.id, "are you there?")
                items = await collect_until(view, turn_completed, 30)
            found["alice"] = [i.text for i in items if isinstance(i, p.MessageCompleted)]
        return found

    found = await side.run_async(scenario(), timeout=60)
    assert "refused this client's key" in str(found["stranger"])
    assert "HAS CHANGED" in str(found["wrong_daemon_key"])
    assert found["plaintext"] == "no reply; handshake failed"
    assert found["garbage"] is True
    assert found["alice"] == ["still here"]
    host = link.client_host if link.kind != "network namespaces" else "198.18."

    def refused(log: str) -> list[str]:
        # Any address: one read from a connection ZeroMQ closed already is "unknown"
        # (the address of a refused key comes from ZAP, and is checked below).
        return [line for line in log.splitlines() if "refused a TCP peer at " in line]

    def all_told(log: str) -> bool:
        lines = refused(log)
        wrong_key = [line for line in lines if "does not decrypt" in line]
        # Plaintext and garbage: which reason ZeroMQ gives depends on who hangs up first.
        return bool(wrong_key) and len(lines) > len(wrong_key)

    log = await world.daemon.wait_for_log(all_told)
    assert f"refused a client at {host}" in log and "is not in" in log
    assert stranger.public[:12] in log  # which key was refused


async def test_a_flood_of_unfinished_handshakes_is_hung_up_and_clients_get_in_after(
    world: RemoteWorld, model: ScriptedModelServer, side: SideLoop, workspace: Path
) -> None:
    """Connections that never shake hands hold a descriptor each until the handshake
    timeout: past 16 from one host, the daemon hangs up on them at once."""
    model.add(Reply(text="in"))
    host, port = world.endpoint.removeprefix("tcp://").rsplit(":", 1)

    async def scenario() -> list[str]:
        async with await Client.connect(name="alice", remote=world.remote()) as alice:
            info = await alice.create_session(str(workspace))
            flood = [await asyncio.open_connection(host, int(port)) for _ in range(40)]
            try:
                log = await world.daemon.wait_for_log(lambda text: "too many unfinished" in text)
            finally:
                for _, writer in flood:
                    writer.close()
        async with (
            await Client.connect(name="alice", remote=world.remote()) as alice,
            await alice.attach(info.id) as view,
        ):
            await alice.send(info.id, "still there?")
            items = await collect_until(view, turn_completed, 30)
        return [log, *(i.text for i in items if isinstance(i, p.MessageCompleted))]

    log, *said = await side.run_async(scenario(), timeout=60)
    assert "too many unfinished handshakes from its host" in log
    assert said == ["in"]


async def _plaintext_zmtp(world: RemoteWorld) -> str:
    """A DEALER that speaks ZMTP without CURVE: the daemon gives it nothing."""
    context = zmq.asyncio.Context()
    dealer = context.socket(zmq.DEALER)
    monitor = dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    try:
        dealer.connect(world.endpoint)
        await dealer.send(b'{"id":"1","method":"daemon.hello"}')
        reply = await dealer.poll(2000)
        event = parse_monitor_message(await asyncio.wait_for(monitor.recv_multipart(), 5))
        failed = event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        return ("a reply!" if reply else "no reply") + ("; handshake failed" if failed else "")
    finally:
        dealer.disable_monitor()
        monitor.close(0)
        dealer.close(0)
        context.term()


async def _garbage(world: RemoteWorld) -> bool:
    """Bytes that are not ZMTP: the daemon says its greeting at most, then hangs up."""
    host, port = world.endpoint.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\n\r\n" * 10 + bytes(range(256)) * 16)
    received = b""
    async with asyncio.timeout(10):
        try:
            while chunk := await reader.read(4096):
                received += chunk
        except ConnectionResetError:  # closed with our bytes unread: a reset
            pass
    writer.close()
    # A ZMTP 3 greeting is 64 bytes; nothing else may come, least of all JSON.
    return len(received) <= 64 and b"{" not in received


async def test_oversize_and_garbage_from_an_admitted_key_get_refusals_and_the_daemon_serves_on(
    world: RemoteWorld, side: SideLoop
) -> None:
    assert world.client_keys is not None
    keys = load("client", secret=True, directory=world.client_config / "keys")

    async def scenario() -> dict[str, object]:
        found: dict[str, object] = {}
        context = zmq.asyncio.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.CURVE_SERVERKEY, world.daemon_key().encode())
        dealer.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode())
        dealer.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode())
        dealer.setsockopt(zmq.RECONNECT_IVL, 50)
        dealer.connect(world.endpoint)

        async def ask(frame: bytes, timeout: float = 10.0) -> dict | None:
            await dealer.send(frame)
            if await dealer.poll(timeout * 1000) == 0:
                return None
            return json.loads(await dealer.recv())

        try:
            found["garbage"] = await ask(b"\xff\xfe not json")
            big = b'{"id": "big", "method": "message.send", "session": "s", "text": "'
            found["oversize"] = await ask(big + b"x" * MAX_REQUEST_BYTES + b'"}', 20)
            # Past the hard limit ZeroMQ drops the frame and the connection
            # (CURVE frames are only read whole): no answer, and it reconnects.
            found["past_limit"] = await ask(b"x" * (HARD_FRAME_BYTES + 1), 2)
            found["after"] = await ask(b'{"id": "again", "method": "daemon.status"}')
        finally:
            dealer.close(0)
            context.term()
        found["unauthenticated_oversize"] = await _oversize_before_handshake(world)
        async with await Client.connect(name="check", remote=world.remote()) as client:
            found["status_pid"] = (await client.status()).pid
        return found

    found = await side.run_async(scenario(), timeout=60)
    garbage = found["garbage"]
    assert isinstance(garbage, dict) and garbage["error"]["code"] == "bad_request"
    oversize = found["oversize"]
    assert isinstance(oversize, dict)
    assert (oversize["id"], oversize["error"]["code"]) == ("big", "too_large")
    assert found["past_limit"] is None
    after = found["after"]
    assert isinstance(after, dict) and after["id"] == "again" and after["ok"] is True
    assert found["unauthenticated_oversize"] == [True, True]
    assert found["status_pid"] == world.daemon.pid


async def _oversize_before_handshake(world: RemoteWorld) -> list[bool]:
    """A ZMTP greeting that asks for CURVE, then a command frame claiming 4 EiB,
    on the request port and the events port: each hangs up (no kfd frame is read)."""
    host, port = world.endpoint.removeprefix("tcp://").rsplit(":", 1)
    greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\0") + bytes(32)
    hung_up: list[bool] = []
    for target in (int(port), int(port) + 1):
        reader, writer = await asyncio.open_connection(host, target)
        writer.write(greeting + b"\x06" + (1 << 62).to_bytes(8, "big") + b"x" * 65536)
        async with asyncio.timeout(10):
            try:
                while await reader.read(65536):
                    pass
            except ConnectionResetError:
                pass
        hung_up.append(True)
        writer.close()
    return hung_up


def test_the_daemon_key_is_pinned_on_first_use_and_a_changed_key_is_refused_loudly(
    world: RemoteWorld,
) -> None:
    first = subprocess.run(
        world.kfd_argv("status", "--remote", "bb"), env=world.env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert "pinned the key of the daemon `bb`" in first.stderr
    assert "over TCP" not in first.stdout or "alice laptop" in first.stdout
    pinned = world.known_daemons.read_text()
    assert world.daemon_key() in pinned
    again = subprocess.run(
        world.kfd_argv("status", "--remote", "bb"), env=world.env, capture_output=True, text=True
    )
    assert again.returncode == 0 and "pinned" not in again.stderr
    for command in (["sessions", "--json"], ["cost", "--json"]):
        answered = subprocess.run(
            world.kfd_argv(*command),
            env={**world.env, "KFD_REMOTE": "bb"},  # as --remote bb
            capture_output=True,
            text=True,
        )
        assert answered.returncode == 0, answered.stderr
        json.loads(answered.stdout)
    # The daemon's keys are made anew (a reinstall, or an impostor at that address).
    world.daemon.stop()
    keys = world.daemon.config_dir / "keys"
    for name in ("daemon.key", "daemon.key_secret"):
        (keys / name).unlink()
    made = world.daemon.cli("keys", "init")
    assert made.returncode == 0, made.stderr
    world.daemon.start()
    refused = subprocess.run(
        world.kfd_argv("status", "--remote", "bb"), env=world.env, capture_output=True, text=True
    )
    assert refused.returncode == 3
    assert "HAS CHANGED" in refused.stderr and "known_daemons" in refused.stderr
    assert world.known_daemons.read_text() == pinned  # the pin stays: no silent re-pinning


async def test_a_key_taken_out_of_authorized_keys_loses_its_connection_and_others_reconnect(
    world: RemoteWorld, model: ScriptedModelServer, side: SideLoop, workspace: Path
) -> None:
    bob = world.make_keys(world.root / "bob-keys", "bob")
    assert world.client_keys is not None
    world.authorize(world.client_keys, bob)
    model.add(Reply(text="after the change"))

    async def scenario() -> tuple[list[str], str]:
        alice = await Client.connect(name="alice", remote=world.remote())
        keys = world.client_config / "keys"
        os.rename(keys, world.root / "alice-keys")
        os.rename(world.root / "bob-keys", keys)
        try:
            bob_client = await Client.connect(name="bob", remote=world.remote())
        finally:
            os.rename(keys, world.root / "bob-keys")
            os.rename(world.root / "alice-keys", keys)
        info = await alice.create_session(str(workspace))
        async with (
            alice,
            bob_client,
            await alice.attach(info.id) as alice_view,
            await bob_client.attach(info.id) as bob_view,
        ):
            assert world.client_keys is not None
            world.authorize(world.client_keys)  # bob is out
            await collect_until(bob_view, of_type(ConnectionLost), 10)
            await collect_until(alice_view, of_type(ConnectionRestored), 10)  # alice is back
            await alice.send(info.id, "still there?")
            items = await collect_until(alice_view, turn_completed, 30)
            try:
                await bob_client.request(p.Status(id=""), timeout=3)
                bob_says = "answered"
            except Exception as exc:
                bob_says = type(exc).__name__
        return [i.text for i in items if isinstance(i, p.MessageCompleted)], bob_says

    texts, bob_says = await side.run_async(scenario(), timeout=60)
    assert texts == ["after the change"]
    assert bob_says == "RemoteRefused"
    assert "no longer admits" in world.daemon.log_text()


async def test_a_stopped_remote_client_is_told_what_it_missed_and_catches_up(
    link: Link, model: ScriptedModelServer, workspace: Path
) -> None:
    queue_kib = 256
    model.add(Reply(text="y" * 5_000_000, chunk_chars=4096))
    config = f"\n[daemon]\nclient_queue_kib = {queue_kib}\n"
    # Heartbeats far apart on both sides: a stopped client is slow, not dead
    # (with short ones it is dropped, and catches up when it comes back).
    # An answer of 5 MB, past the 2x max_output_tokens kfd reads by default.
    long_answers = "max_output_tokens = 4_000_000\n"
    with RemoteWorld(
        link, model, daemon_config=config, model_config=long_answers, heartbeat_s=20.0
    ) as world:
        pin(parse_endpoint(world.endpoint), world.daemon_key(), world.known_daemons)
        async with await world.daemon.client() as client:
            info = await client.create_session(workspace)
            argv = world.link.client_argv(
                [sys.executable, str(HERE / "slow_client.py"), "-", info.id, world.endpoint]
            )
            slow = await asyncio.create_subprocess_exec(
                *argv, env=world.env, stdout=asyncio.subprocess.PIPE
            )
            assert slow.stdout is not None
            assert (await asyncio.wait_for(slow.stdout.readline(), 20)).strip() == b"ready"
            # `ip netns exec` execs the client: its pid is the client's.
            slow.send_signal(signal.SIGSTOP)  # a laptop that sleeps with its link up
            try:
                async with await client.attach(info.id) as view:
                    await client.send(info.id, "say a lot")
                    await collect_until(view, turn_completed, timeout=60)
                status = await client.status()
                [behind] = [f for f in status.frontends if f.name.startswith("slow-client")]
                assert behind.shed_events > 0
                assert behind.peak_queued_bytes <= queue_kib * 1024 + 64 * ITEM_OVERHEAD
            finally:
                slow.send_signal(signal.SIGCONT)
            out, _ = await asyncio.wait_for(slow.communicate(), 60)
    items = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    kinds = [item["type"] for item in items]
    assert "events.dropped" in kinds  # told, not silently starved
    assert kinds[-1] == "turn.completed"
    durable = [item["seq"] for item in items if not item["ephemeral"]]
    assert durable == list(range(durable[0], durable[-1] + 1))  # each once, in order
    assert slow.returncode == 0


def _watched_by(count: int) -> Callable[[object], bool]:
    def done(item: object) -> bool:
        return isinstance(item, p.FrontendsChanged) and item.count == count

    return done


async def test_each_key_may_have_only_so_many_clients_at_once(
    link: Link,
    model: ScriptedModelServer,
    side: SideLoop,
    monkeypatch: pytest.MonkeyPatch,
    workspace: Path,
) -> None:
    with RemoteWorld(link, model, daemon_config="max_clients_per_key = 2\n") as world:
        for key in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
            monkeypatch.setenv(key, world.env[key])

        async def scenario() -> str:
            first = await Client.connect(name="one", remote=world.remote())
            second = await Client.connect(name="two", remote=world.remote())
            try:
                await Client.connect(name="three", remote=world.remote())
            except RequestFailed as exc:
                refused = exc.message
            else:
                refused = ""
            info = await first.create_session(str(workspace))
            async with await first.attach(info.id) as view:
                async with await second.attach(info.id):
                    await collect_until(view, _watched_by(2), 10)
                await second.close()
                # The daemon saw it go: the session's watchers went back to one.
                await collect_until(view, _watched_by(1), 10)
            assert not any(f.name.startswith("two") for f in (await first.status()).frontends)
            async with first, await Client.connect(name="three", remote=world.remote()):
                pass
            return refused

        refused = await side.run_async(scenario(), timeout=60)
    assert "already has 2 clients" in refused and "max_clients_per_key" in refused


def test_tcp_listening_needs_the_daemon_key_pair(link: Link, model: ScriptedModelServer) -> None:
    world = RemoteWorld(link, model)
    try:
        started = subprocess.run(
            [*world.daemon.wrap, sys.executable, "-m", "kfd", "daemon"],
            env=world.daemon.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert started.returncode == 2
        assert "kfd keys init" in started.stderr and "daemon.key_secret" in started.stderr
    finally:
        world.close()


def test_kfd_keys_init_makes_what_is_missing_and_show_prints_the_public_keys(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}

    def kfd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kfd", "keys", *args], env=env, capture_output=True, text=True
        )

    missing = kfd("show")
    assert missing.returncode == 1 and "kfd keys init" in missing.stderr
    made = kfd("init", "--comment", "alice laptop")
    assert made.returncode == 0, made.stderr
    assert made.stderr.count("made ") == 4 and "authorized_keys" in made.stderr
    client = kfd("show").stdout.strip()
    key, comment = client.split(" ", 1)
    assert is_key(key) and comment == "alice laptop"
    assert client in made.stderr  # the line to add, as it is
    daemon = kfd("show", "--daemon").stdout.strip()
    assert is_key(daemon) and daemon != key
    again = kfd("init")
    assert again.returncode == 0 and "made " not in again.stderr
    assert kfd("show").stdout.strip() == client  # nothing was remade


def test_namespaces_left_by_a_killed_test_run_are_removed_by_the_next() -> None:
    why = why_no_namespaces()
    if why:
        pytest.skip(f"no network namespaces here ({why})")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, ours = f"{NAME_PREFIX}{gone.pid}-test-a", f"{NAME_PREFIX}{os.getpid()}-test-a"
    try:
        for name in (stale, ours):
            subprocess.run(["ip", "netns", "add", name], check=True)
        removed = remove_stale_namespaces()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    finally:
        for name in (stale, ours):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert stale in removed and ours not in removed
    assert stale not in listed and ours in listed
