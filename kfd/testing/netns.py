"""Two hosts on one machine, joined by a link a test can cut: for remote attach.

`NamespacePair` makes two network namespaces (``ip netns``) joined by a veth
pair, with addresses from 198.18.0.0/15 (the range set aside for network
tests, RFC 2544) that exist only inside them; ``cut`` takes the link down
(``ip link set … down``) and ``restore`` brings it back. It needs root (the
suite runs as root in CI). Where namespaces cannot be made, `LoopbackRelay`
plays the same part on 127.0.0.1: clients reach the daemon through a relay
in this process, and ``cut`` makes the relay swallow every byte (as a dead
link does) until ``restore``. `make_link` picks one and says which.

Either way a test gets: where the daemon listens (``daemon_host``), where
clients connect (``client_host``), how to start a process on each side
(``daemon_argv``, ``client_argv``), and `Link.on_daemon_side` /
`Link.on_client_side` to run a function whose sockets must live on that
side (a scripted model server next to the daemon, a chat server next to the
bridge): sockets belong to the namespace of the thread that creates them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NAME_PREFIX = "kfdtest-"
"""Namespaces made here are named ``kfdtest-PID-TAG-a|b``: PID is the test
process, so a run killed before its teardown leaves names the next run removes."""
TEST_RANGE = "198.18"
"""First two octets of the addresses the namespaces use (RFC 2544's benchmark range)."""


class Link(Protocol):
    """A daemon's host and a client's host, and the link between them."""

    daemon_host: str
    daemon_port: int
    """Where the daemon listens: ``tcp://daemon_host:daemon_port`` (and the two ports after)."""
    client_host: str
    kind: str
    """``network namespaces`` or ``127.0.0.1 relay``: said in test logs."""

    def cut(self) -> None:
        """Stop every byte between the hosts (connections stay open, as on a dead link)."""

    def restore(self) -> None:
        """Carry bytes again."""

    def client_port(self, daemon_port: int) -> int:
        """The port a client connects to for the daemon's ``daemon_port`` (and the two after)."""

    def daemon_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run on the daemon's host."""

    def client_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run on the client's host."""

    def on_daemon_side(self, function: Callable[[], T]) -> T:
        """``function()`` with the sockets it makes on the daemon's host."""

    def on_client_side(self, function: Callable[[], T]) -> T:
        """``function()`` with the sockets it makes on the client's host."""

    def enter_client_side(self) -> None:
        """Move the calling thread to the client's host (its new sockets live there)."""

    def close(self) -> None:
        """Remove what was made."""


class SideLoop:
    """An asyncio loop in a thread on the client's host: run `kfd.client` code
    there from a test (`run`, `run_async`), then `close`."""

    def __init__(self, link: Link) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            try:
                link.enter_client_side()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            asyncio.set_event_loop(self.loop)
            started.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=target, name="client side", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    async def run_async(self, work: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Await ``work`` run on the client's host, from the test's own loop."""
        async with asyncio.timeout(timeout):
            return await asyncio.wrap_future(self.submit(work))

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return self.submit(work).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def why_no_namespaces() -> str:
    """Why network namespaces cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"kfdprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def make_link() -> Link:
    """Network namespaces if they can be made, else the relay on 127.0.0.1
    (``KFD_TEST_LINK=relay`` asks for the relay)."""
    why = "KFD_TEST_LINK=relay" if os.environ.get("KFD_TEST_LINK") == "relay" else ""
    why = why or why_no_namespaces()
    if not why:
        return NamespacePair()
    relay = LoopbackRelay()
    relay.kind = f"127.0.0.1 relay (no network namespaces: {why})"
    return relay


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _join(name: str) -> None:
    """Move the calling thread into the network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {name}: {os.strerror(error)}")
    finally:
        os.close(fd)


def _in_namespace(name: str, function: Callable[[], T]) -> T:
    """Run ``function`` in a thread that joined the network namespace ``name``."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            _join(name)
            outcome.append(function())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"netns {name}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    if not outcome:
        raise RuntimeError(f"could not enter the network namespace {name}")
    return outcome[0]


class NamespacePair:
    """Namespaces ``A`` (the daemon's host) and ``B`` (the client's), one veth pair."""

    kind = "network namespaces"

    def __init__(self) -> None:
        remove_stale_namespaces()
        tag = secrets.token_hex(3)
        self.a, self.b = (f"{NAME_PREFIX}{os.getpid()}-{tag}-{side}" for side in "ab")
        self.veth_a, self.veth_b = f"ka{tag}", f"kb{tag}"
        third = int(tag[:2], 16)
        self.daemon_host = f"{TEST_RANGE}.{third}.1"
        self.client_host_address = f"{TEST_RANGE}.{third}.2"
        self.client_host = self.daemon_host  # clients connect straight to the daemon
        self.daemon_port = 7450  # nothing else listens in a namespace of its own
        made: list[str] = []
        try:
            for name in (self.a, self.b):
                _ip("netns", "add", name)
                made.append(name)
                _ip("-n", name, "link", "set", "lo", "up")
            _ip("link", "add", self.veth_a, "netns", self.a, "type", "veth", "peer", "name",
                self.veth_b, "netns", self.b)  # fmt: skip
            _ip("-n", self.a, "addr", "add", f"{self.daemon_host}/30", "dev", self.veth_a)
            _ip("-n", self.b, "addr", "add", f"{self.client_host_address}/30", "dev", self.veth_b)
            _ip("-n", self.a, "link", "set", self.veth_a, "up")
            _ip("-n", self.b, "link", "set", self.veth_b, "up")
        except BaseException:
            for name in made:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
            raise
        # Teardown runs even when a test fails; this covers a run that stops
        # before it (an interrupt), and `remove_stale_namespaces` a killed one.
        atexit.register(self.close)

    def cut(self) -> None:
        _ip("-n", self.a, "link", "set", self.veth_a, "down")

    def restore(self) -> None:
        _ip("-n", self.a, "link", "set", self.veth_a, "up")

    def client_port(self, daemon_port: int) -> int:
        return daemon_port

    def daemon_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.a, *argv]

    def client_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.b, *argv]

    def on_daemon_side(self, function: Callable[[], T]) -> T:
        return _in_namespace(self.a, function)

    def on_client_side(self, function: Callable[[], T]) -> T:
        return _in_namespace(self.b, function)

    def enter_client_side(self) -> None:
        _join(self.b)

    def close(self) -> None:
        atexit.unregister(self.close)
        for name in (self.a, self.b):  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_stale_namespaces() -> list[str]:
    """Remove the namespaces of test processes that are gone (killed before
    their teardown); the names removed."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    removed = []
    for line in listed.stdout.splitlines():
        name = line.split(" ", 1)[0]
        if not name.startswith(NAME_PREFIX):
            continue
        pid = name.removeprefix(NAME_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        done = subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if done.returncode == 0:
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port_run(count: int = 3, host: str = "127.0.0.1") -> int:
    """A port such that it and the ``count - 1`` after it are free on ``host`` now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((host, 0))
            base: int = probe.getsockname()[1]
        if base + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no run of free ports found")


class SameHost:
    """A `Link` whose two ends are this host's loopback, joined directly: every
    process runs where it is, and the link cannot be cut."""

    kind = "loopback"

    def __init__(self) -> None:
        self.daemon_host = self.client_host = "127.0.0.1"
        self.daemon_port = free_port_run()

    def client_port(self, daemon_port: int) -> int:
        return daemon_port

    def cut(self) -> None:
        raise NotImplementedError("a direct loopback link cannot be cut (LoopbackRelay can)")

    def restore(self) -> None:
        raise NotImplementedError("a direct loopback link cannot be cut (LoopbackRelay can)")

    def daemon_argv(self, argv: list[str]) -> list[str]:
        return argv

    def client_argv(self, argv: list[str]) -> list[str]:
        return argv

    def on_daemon_side(self, function: Callable[[], T]) -> T:
        return function()

    def on_client_side(self, function: Callable[[], T]) -> T:
        return function()

    def enter_client_side(self) -> None:
        pass

    def close(self) -> None:
        pass


class LoopbackRelay(SameHost):
    """The daemon on 127.0.0.1, its clients through a relay that can play dead."""

    kind = "127.0.0.1 relay"

    def __init__(self) -> None:
        super().__init__()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._listeners: dict[int, int] = {}
        self._selector = selectors.DefaultSelector()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def client_port(self, daemon_port: int) -> int:
        """Relay ``daemon_port`` and the two after it; the first relay port."""
        with self._lock:
            existing = [p for p, target in self._listeners.items() if target == daemon_port]
        if existing:
            return existing[0]
        base = free_port_run()
        for offset in range(3):
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", base + offset))
            listener.listen(64)
            listener.setblocking(False)
            with self._lock:
                self._listeners[base + offset] = daemon_port + offset
            self._selector.register(listener, selectors.EVENT_READ, daemon_port + offset)
        self._wake()
        return base

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self._cut.clear()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wakeup_w.send(b"x")

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wakeup_r:
                    with contextlib.suppress(OSError):
                        sock.recv(4096)
                    continue
                if key.data is not None and sock not in self._peers:
                    self._accept(sock, key.data)
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                peer = self._peers.get(sock)
                if self._cut.is_set():
                    # A dead link: bytes vanish and closes are not seen on the other side.
                    if not data:
                        self._drop(sock, keep_peer=True)
                    continue
                if not data or peer is None:
                    self._drop(sock)
                    continue
                try:
                    peer.setblocking(True)
                    peer.sendall(data)
                    peer.setblocking(False)
                except OSError:
                    self._drop(sock)

    def _accept(self, listener: socket.socket, target_port: int) -> None:
        try:
            inbound, _ = listener.accept()
        except OSError:
            return
        if self._cut.is_set():
            inbound.close()  # nothing gets through a dead link
            return
        try:
            outbound = socket.create_connection(("127.0.0.1", target_port), timeout=2)
        except OSError:
            inbound.close()
            return
        for sock in (inbound, outbound):
            sock.setblocking(False)
        self._peers[inbound], self._peers[outbound] = outbound, inbound
        self._selector.register(inbound, selectors.EVENT_READ, None)
        self._selector.register(outbound, selectors.EVENT_READ, None)

    def _drop(self, sock: socket.socket, keep_peer: bool = False) -> None:
        """Close ``sock``; its peer too, unless the link is cut: then the peer
        hears nothing until its own heartbeat gives up (or it sends once the
        link is back, and finds no one there)."""
        peer = self._peers.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()
        if peer is None:
            return
        self._peers.pop(peer, None)
        if not keep_peer:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(peer)
            peer.close()

    def close(self) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(5)
        for sock in list(self._peers):
            sock.close()
        for key in list(self._selector.get_map().values()):
            obj = key.fileobj
            if isinstance(obj, socket.socket):
                obj.close()
        self._selector.close()
        self._wakeup_w.close()
