"""Remote attach, the parts that decide: endpoints, key files, who is admitted,
what is logged, how a command picks its daemon. Plain function calls, real files."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
import zmq

from kfd import protocol as p
from kfd.cli import remotes
from kfd.client import Remote, qualify, split
from kfd.client.errors import KeysMissing
from kfd.client.keys import init_keys, load
from kfd.client.multi import qualified_item
from kfd.client.remote import expected_key, pin
from kfd.config import parse
from kfd.daemon.bus_tcp import Gate, Handshakes, RefusalLog, protocol_failure
from kfd.errors import ConfigError
from kfd.remote import (
    announcement,
    clean_comment,
    is_key,
    parse_announcement,
    parse_authorized_keys,
    parse_endpoint,
    parse_known_daemons,
)

KEY_A = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
KEY_B = "#HjZ4/Tn+Xg2L*:zLpg2u=ChV@u)+DC)Cu[tSE6u"  # a Z85 key may begin with "#"


def test_endpoints_name_three_ports_and_anything_else_is_refused_with_why() -> None:
    endpoint = parse_endpoint("tcp://buildbox:7450")
    assert (endpoint.rpc, endpoint.events, endpoint.key_port) == (
        "tcp://buildbox:7450",
        "tcp://buildbox:7451",
        7452,
    )
    assert parse_endpoint("tcp://*:7450").socket_host is None
    assert parse_endpoint("tcp://[::1]:7450").ipv6
    for bad, why in [
        ("ipc:///run/kfd/rpc.sock", "tcp://HOST:PORT"),
        ("tcp://host", "tcp://HOST:PORT"),
        ("tcp://host:65534", "1-65533"),
        ("tcp://host:0", "1-65533"),
        ("tcp://host:7450/path", "tcp://HOST:PORT"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_endpoint(bad)


def test_authorized_keys_admit_keys_with_comments_and_name_every_line_they_skip() -> None:
    text = (
        "# the team\n"
        f"{KEY_A} alice laptop\n"
        "\n"
        f"{KEY_B}\tchat bridge on ops-1\n"
        "not-a-key mallory\n"
        f"#{KEY_A} bob, commented out\n"
        f"{KEY_A[:-1]}\x1b[31m evil\n"
    )
    found = parse_authorized_keys(text)
    assert found.comments == {KEY_A: "alice laptop", KEY_B: "chat bridge on ops-1"}
    assert [problem.split(":")[0] for problem in found.problems] == ["line 5", "line 7"]
    assert "kfd keys show" in found.problems[0]
    assert parse_authorized_keys(KEY_A).comments == {KEY_A: f"key {KEY_A[:12]}…"}


def test_comments_shown_to_others_are_one_printable_line() -> None:
    assert clean_comment("bob\x1b[2J\r\nroot  ") == "bob [2J root"
    assert len(clean_comment("x" * 500)) == 80


def test_known_daemons_keep_the_first_pin_of_an_endpoint(tmp_path: Path) -> None:
    text = (
        f"tcp://bb:7450 {KEY_A} pinned on first use 2026-01-01\n"
        f"tcp://bb:7450 {KEY_B} a later line cannot replace a pin\n"
        "garbage\n"
        f"tcp://cc:7450 {KEY_B}\n"
    )
    assert parse_known_daemons(text) == {"tcp://bb:7450": KEY_A, "tcp://cc:7450": KEY_B}
    known = tmp_path / "config" / "known_daemons"
    remote = Remote("bb", "tcp://bb:7450")
    assert expected_key(remote, known) is None
    pin(remote.address, KEY_A, known)
    pin(remote.address, KEY_B, known)  # already pinned: unchanged
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    pinned = expected_key(remote, known)
    assert pinned is not None and (pinned.key, pinned.source) == (KEY_A, "known_daemons")
    configured = expected_key(Remote("bb", "tcp://bb:7450", daemon_key=KEY_B), known)
    assert configured is not None and (configured.key, configured.source) == (KEY_B, "config")


def test_the_key_announcement_says_a_key_and_nothing_else_passes() -> None:
    assert parse_announcement(announcement(KEY_A)) == KEY_A
    for bad in (b"", b"SSH-2.0-OpenSSH\r\n", announcement(KEY_A)[:-1], b"kfd-daemon-key 1 x\n"):
        with pytest.raises(ValueError, match=r"announcement|not a CURVE public key"):
            parse_announcement(bad)
    assert is_key(KEY_B) and not is_key(KEY_A + "x") and not is_key("é" * 40)


def test_bus_and_remotes_config_is_checked_with_the_key_that_is_wrong() -> None:
    config = parse(
        b'[bus]\nlisten = ["tcp://0.0.0.0:7450"]\n[remotes.buildbox]\n'
        b'endpoint = "tcp://buildbox:7450"\nworkspace = "/srv/app"\n',
        Path("config.toml"),
        {},
    )
    assert config.bus.listen == ["tcp://0.0.0.0:7450"] and config.bus.heartbeat_s == 5.0
    assert config.remotes["buildbox"].workspace == "/srv/app"
    for raw, words in [
        (b'[bus]\nlisten = ["tcp://x:7450", "tcp://x:7450"]\n', "listed twice"),
        (b'[bus]\nlisten = ["ipc:///tmp/x"]\n', "listen: 'ipc:///tmp/x'"),
        (b"[bus]\nheartbeat_s = 0\n", "heartbeat_s"),
        (b'[remotes.bb]\nendpoint = "tcp://bb:7450"\ndaemon_key = "short"\n', "$.remotes.bb"),
        (b'[remotes.local]\nendpoint = "tcp://bb:7450"\n', "'local' means this machine"),
        (b'[remotes."a b"]\nendpoint = "tcp://bb:7450"\n', "cannot name a remote"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse(raw, Path("config.toml"), {})
        assert words in str(caught.value), caught.value


def test_refusals_are_logged_once_a_minute_per_address_with_a_count() -> None:
    log = RefusalLog(every_s=60)
    assert log.admit("10.0.0.9", 0.0) == 0
    assert log.admit("10.0.0.9", 1.0) is None
    assert log.admit("10.0.0.9", 2.0) is None
    assert log.admit("10.0.0.8", 2.0) == 0  # another address is not held back
    assert log.admit("10.0.0.9", 61.0) == 2


def test_handshake_events_name_the_connection_that_failed_and_why() -> None:
    watch = Handshakes()
    watch.accepted(10, "198.18.0.2:5000")  # a client that gets in
    watch.accepted(11, "198.18.0.2:5001")  # plaintext ZMTP
    watch.succeeded()
    watch.failed("not CURVE")
    assert watch.disconnected(11) == ("198.18.0.2:5001", "not CURVE")
    watch.accepted(12, "198.18.0.3:6000")  # garbage: no handshake event at all
    assert watch.disconnected(12) == ("198.18.0.3:6000", Handshakes.GARBAGE)
    watch.accepted(13, "198.18.0.4:7000")  # a refused key: ZAP logged it already
    watch.failed("")
    assert watch.disconnected(13) == ("198.18.0.4:7000", "")
    assert watch.disconnected(10) is None  # a client that had got in, leaving


def test_unfinished_handshakes_are_limited_per_host_and_in_all() -> None:
    watch = Handshakes(per_host=2, total=3)
    assert watch.accepted(10, "198.18.0.2:5000")
    assert watch.accepted(11, "198.18.0.2:5001")
    assert not watch.accepted(12, "198.18.0.2:5002")  # a third from that host
    assert watch.accepted(13, "198.18.0.3:6000")  # another host still gets in
    assert not watch.accepted(14, "198.18.0.4:7000")  # three in all
    watch.succeeded()  # the oldest (10) finished its handshake
    assert watch.accepted(15, "198.18.0.2:5003")
    assert watch.disconnected(12) is None  # hung up, never counted
    # An address that could not be read counts toward the total only.
    watch = Handshakes(per_host=1, total=10)
    assert watch.accepted(20, "an unknown address (ZeroMQ had closed the connection already)")
    assert watch.accepted(21, "an unknown address (ZeroMQ had closed the connection already)")


def test_a_failed_handshake_says_plaintext_from_a_wrong_daemon_key() -> None:
    assert "plaintext" in protocol_failure(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    assert "another daemon key" in protocol_failure(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
    assert "0x10000013" in protocol_failure(zmq.PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_HELLO)


def test_authorized_keys_are_read_again_when_changed_and_fail_closed_when_loose(
    tmp_path: Path,
) -> None:
    path = tmp_path / "authorized_keys"
    gate = Gate(path)
    assert gate.refresh() == set() and gate.comments == {}
    path.write_text(f"{KEY_A} alice\n{KEY_B} bob\n")
    path.chmod(0o600)
    os.utime(path, (1, 1))  # long settled
    gate.refresh()
    assert gate.comments == {KEY_A: "alice", KEY_B: "bob"}
    path.write_text(f"{KEY_A} alice\n")
    os.utime(path, (2, 2))
    assert gate.refresh() == {KEY_B}
    path.chmod(0o666)  # anyone could add a key: nobody is admitted
    assert gate.refresh() == {KEY_A} and gate.comments == {}


def test_keys_are_made_once_private_and_refused_when_others_can_read_them(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = init_keys("alice laptop", keys)
    assert sorted(path.name for path in made) == [
        "client.key",
        "client.key_secret",
        "daemon.key",
        "daemon.key_secret",
    ]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in made)
    assert init_keys("", keys) == []  # nothing missing: nothing made
    client = load("client", secret=True, directory=keys)
    assert is_key(client.public) and is_key(client.secret)
    assert client.line() == f"{client.public} alice laptop"
    assert load("daemon", secret=False, directory=keys).secret == ""
    (keys / "client.key_secret").chmod(0o644)
    with pytest.raises(KeysMissing, match="chmod 600"):
        load("client", secret=True, directory=keys)
    with pytest.raises(KeysMissing, match="kfd keys init"):
        load("client", secret=True, directory=tmp_path / "nowhere")


def _args(command: str | None, **values: object) -> argparse.Namespace:
    return argparse.Namespace(command=command, **values)


def test_a_command_names_its_daemon_by_option_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = parse(
        b'[remotes.bb]\nendpoint = "tcp://bb:7450"\n[remotes.cc]\nendpoint = "tcp://cc:7450"\n',
        Path("c.toml"),
        {},
    )
    monkeypatch.delenv(remotes.ENV, raising=False)
    args = _args("status", remote_name=None)
    remotes.resolve(args, config)
    assert args.remotes == [None]
    monkeypatch.setenv(remotes.ENV, "cc")
    remotes.resolve(args, config)
    assert [r.name for r in args.remotes] == ["cc"]
    args = _args("chat", remote_name=None, remote_names=["local", "bb", "bb"])
    remotes.resolve(args, config)
    assert args.remotes[0] is None and [r.name for r in args.remotes[1:]] == ["bb"]
    with pytest.raises(ConfigError, match="the remotes are: bb, cc"):
        remotes.resolve(_args("run", remote_name="dd"), config)
    with pytest.raises(ConfigError, match="talks to one daemon"):
        remotes.resolve(_args("run", remote_name="bb", remote_names=["cc"]), config)


def test_sessions_of_a_remote_daemon_are_named_host_slash_session() -> None:
    assert qualify("", "s1") == "s1" and qualify("bb", "s1") == "bb/s1"
    assert split("bb/s1") == ("bb", "s1") and split("s1") == ("", "s1")
    event = p.ApprovalRequested(
        session="s1", seq=3, approval_id="a1", call_id="c1", tool="bash", reason="asks"
    )
    assert qualified_item("bb", event) is event and event.session == "bb/s1"
    local = p.TurnStarted(session="s2", seq=1, turn=1)
    assert qualified_item("", local).session == "s2"


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--remote", "bb"], ["bb"]),
        (["attach", "--remote", "bb"], ["bb"]),
        (["new", "--remote", "bb"], ["bb"]),
        (["run", "--remote", "bb", "--cwd", "/srv/app", "hi"], ["bb"]),
        (["sessions", "--remote", "bb"], ["bb"]),
        (["status", "--remote", "bb"], ["bb"]),
        (["cost", "--remote", "bb"], ["bb"]),
        (["notify", "--remote", "bb", "--remote", "local"], ["bb", "local"]),
        (["chat", "matrix", "--remote", "bb", "--remote", "cc"], ["bb", "cc"]),
    ],
)
def test_every_command_of_the_interface_takes_remote(argv: list[str], names: list[str]) -> None:
    from kfd.cli import build_parser

    args = build_parser().parse_args(argv)
    given = [args.remote_name] if getattr(args, "remote_name", None) else []
    assert given + getattr(args, "remote_names", []) == names
