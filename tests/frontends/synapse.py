"""Test support: a real Synapse homeserver on 127.0.0.1, and Matrix users to drive it.

`Synapse` starts ``matrix-synapse`` (from the dev lock) with SQLite in a
temporary directory, no federation, and its default rate limits, and
registers users through the shared-secret admin API, as an operator would.
One homeserver serves a whole test module: tests keep apart by registering
their own users and rooms (`Synapse.user` with a fresh name each time).

`MatrixUser` is what a test does as a person in Element would: create rooms,
invite, send messages (replies, threads, reactions with U+FE0F), and read
the room back with the bot's edits applied.
"""

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from signedjson.key import generate_signing_key, write_signing_keys

SERVER_NAME = "localhost"
_LOG_CONFIG = """
version: 1
formatters:
  plain: {format: "%(asctime)s %(name)s %(levelname)s %(message)s"}
handlers:
  file: {class: logging.FileHandler, filename: "%(log)s", formatter: plain}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Synapse:
    """One homeserver process; `start` it, `stop` it, make users on it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.secret = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._admin: MatrixUser | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "homeserver.log"

    def start(self, timeout: float = 60.0) -> "Synapse":
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "signing.key", "w") as key:
            write_signing_keys(key, [generate_signing_key("a_test")])
        (d / "log.yaml").write_text(_LOG_CONFIG.replace("%(log)s", str(self.log)))
        (d / "homeserver.yaml").write_text(f"""
server_name: "{SERVER_NAME}"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {self.port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    resources: [{{names: [client], compress: false}}]
database:
  name: sqlite3
  args: {{database: "{d}/homeserver.db"}}
log_config: "{d}/log.yaml"
media_store_path: "{d}/media"
signing_key_path: "{d}/signing.key"
registration_shared_secret: "{self.secret}"
macaroon_secret_key: "{secrets.token_hex(16)}"
form_secret: "{secrets.token_hex(16)}"
report_stats: false
bcrypt_rounds: 4
trusted_key_servers: []
suppress_key_server_warning: true
enable_metrics: false
presence: {{enabled: false}}
url_preview_enabled: false
""")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(d / "homeserver.yaml")],
            cwd=d,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(d / "stderr.log", "wb"),  # noqa: SIM115 -- the child keeps it
            env={**os.environ, "SYNAPSE_CACHE_FACTOR": "0.1"},
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"synapse exited with {self._process.returncode}: "
                    + (d / "stderr.log").read_text()[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_matrix/client/versions", timeout=1).is_success:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"synapse did not answer within {timeout} s")
            time.sleep(0.1)  # polling a process that has no readiness signal

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def fresh_name(self, stem: str) -> str:
        """A localpart no other test used (one homeserver serves many tests)."""
        return f"{stem}{next(self._names)}x{secrets.token_hex(2)}"

    async def user(self, stem: str, *, admin: bool = False, unlimited: bool = True) -> "MatrixUser":
        """Register a new user through the shared-secret admin API.

        ``unlimited`` lifts the message rate limit for this user (test people
        type fast); a bot under test keeps Synapse's defaults.
        """
        name = self.fresh_name(stem)
        password = secrets.token_hex(8)
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            nonce = (await http.get("/_synapse/admin/v1/register")).json()["nonce"]
            role = "admin" if admin else "notadmin"
            mac_hex = hmac.new(
                self.secret.encode(),
                b"\x00".join(part.encode() for part in (nonce, name, password, role)),
                hashlib.sha1,
            ).hexdigest()
            answer = await http.post(
                "/_synapse/admin/v1/register",
                json={
                    "nonce": nonce,
                    "username": name,
                    "password": password,
                    "admin": admin,
                    "mac": mac_hex,
                },
            )
            answer.raise_for_status()
            body = answer.json()
        user = MatrixUser(self.url, body["user_id"], body["access_token"])
        if unlimited:
            admin_user = await self._administrator()
            await admin_user.call(
                "POST",
                f"/_synapse/admin/v1/users/{user.user_id}/override_ratelimit",
                {"messages_per_second": 0, "burst_count": 0},
            )
        return user

    async def _administrator(self) -> "MatrixUser":
        if self._admin is None:
            self._admin = await self.user("admin", admin=True, unlimited=False)
            await self._admin.call(
                "POST",
                f"/_synapse/admin/v1/users/{self._admin.user_id}/override_ratelimit",
                {"messages_per_second": 0, "burst_count": 0},
            )
        return self._admin


@dataclass
class MatrixUser:
    """A person (or the bot's account) on the homeserver, through the client API."""

    url: str
    user_id: str
    token: str
    _txn: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def call(self, method: str, path: str, body: object = None) -> dict:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            while True:
                answer = await http.request(
                    method,
                    path,
                    json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
                if answer.status_code == 429:  # people wait when told to
                    await asyncio.sleep(answer.json().get("retry_after_ms", 500) / 1000)
                    continue
                if answer.is_error:
                    raise AssertionError(f"{method} {path}: {answer.status_code} {answer.text}")
                return answer.json()

    async def create_room(self, *, invite: list[str] = (), encrypted: bool = False) -> str:
        body: dict = {"preset": "private_chat", "invite": list(invite)}
        if encrypted:
            body["initial_state"] = [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
        return (await self.call("POST", "/_matrix/client/v3/createRoom", body))["room_id"]

    async def invite(self, room: str, user_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/rooms/{room}/invite", {"user_id": user_id})

    async def join(self, room: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{room}", {})

    async def send(self, room: str, kind: str, content: dict) -> str:
        txn = f"t{next(self._txn)}{secrets.token_hex(4)}"
        path = f"/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}"
        return (await self.call("PUT", path, content))["event_id"]

    async def say(
        self, room: str, body: str, *, reply_to: str | None = None, thread: str | None = None
    ) -> str:
        """A message as Element sends it (a reply quotes nothing: Element no longer does)."""
        content: dict = {"msgtype": "m.text", "body": body}
        if thread:
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": reply_to or thread},
            }
            if reply_to:
                content["m.relates_to"]["is_falling_back"] = False
        elif reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.send(room, "m.room.message", content)

    async def react(self, room: str, target: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
        return await self.send(room, "m.reaction", content)

    async def events(self, room: str, limit: int = 200) -> list[dict]:
        """The room's timeline, oldest first."""
        path = f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit={limit}"
        return list(reversed((await self.call("GET", path))["chunk"]))

    async def messages_of(self, room: str, sender: str, thread: str | None = None) -> list[dict]:
        """``sender``'s messages in ``room`` with their edits applied:
        {event_id, body, html, edits, thread}."""
        shown: dict[str, dict] = {}
        for event in await self.events(room):
            if event["type"] != "m.room.message" or event["sender"] != sender:
                continue
            content = event["content"]
            relates = content.get("m.relates_to") or {}
            if relates.get("rel_type") == "m.replace":
                target = shown.get(relates["event_id"])
                if target is not None:
                    new = content["m.new_content"]
                    target["body"] = new["body"]
                    target["html"] = new.get("formatted_body")
                    target["edits"] += 1
                continue
            shown[event["event_id"]] = {
                "event_id": event["event_id"],
                "body": content.get("body"),
                "html": content.get("formatted_body"),
                "edits": 0,
                "thread": relates.get("event_id")
                if relates.get("rel_type") == "m.thread"
                else None,
            }
        return [m for m in shown.values() if thread is None or m["thread"] == thread]

    async def wait_for_message(
        self, room: str, sender: str, predicate, *, timeout: float = 30.0
    ) -> dict:
        """The first of ``sender``'s messages for which ``predicate`` holds, waiting
        on the homeserver's own long poll for anything new in the room."""
        since = None
        async with asyncio.timeout(timeout):
            while True:
                for message in await self.messages_of(room, sender):
                    if predicate(message):
                        return message
                since = await self._wait_sync(since)

    async def _wait_sync(self, since: str | None) -> str:
        query = f"timeout=10000&since={since}" if since else "timeout=0"
        answer = await self.call("GET", f"/_matrix/client/v3/sync?{query}")
        return answer["next_batch"]
