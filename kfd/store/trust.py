"""Trusted repository files: the ``trusted_files`` table, and the answer to
"is this file trusted at this exact content?".

A repository is untrusted until the user trusts it: what in it would make
kfd run programs or widen rights (today a project's ``.kfd/config.toml``
allow rules; later project commands, hooks, MCP and language-server
commands) waits until the user trusts the file's exact content
(``kfd trust``). The content is pinned by its sha256, one pin per file: a
changed file is untrusted again until trusted anew.

To ask, read the file once (`kfd.config.read_project` does it for the
project config), hash those bytes (`kfd.config.digest`), ask
`TrustStore.trusted` about that hash, and use those same bytes: never read
the file a second time after the check.

The pins are few and asked for at every permission decision, so they are
read once at start and kept in memory; every change goes to the database
first, then to memory (durable before it applies).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from kfd.protocol import TrustedFile
from kfd.store.db import Store

_COLUMNS = "path, sha256, trusted_at, by"


def _row(row: Any) -> TrustedFile:
    return TrustedFile(
        path=str(row[0]), sha256=str(row[1]), trusted_at=float(row[2]), by=str(row[3])
    )


class TrustStore:
    """The pins of trusted files: in the database, and in memory for decisions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pins: dict[str, TrustedFile] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Read every pin (once, at daemon start)."""
        rows = await self._store.read(
            lambda db: db.execute(f"SELECT {_COLUMNS} FROM trusted_files ORDER BY path").fetchall()
        )
        self._pins = {pin.path: pin for pin in map(_row, rows)}

    def pinned(self, path: str) -> TrustedFile | None:
        """What the user trusted for ``path`` (absolute), if anything."""
        return self._pins.get(os.path.normpath(path))

    def trusted(self, path: str, sha256: str) -> bool:
        """Whether ``path`` is trusted at exactly the content hashed ``sha256``."""
        pin = self.pinned(path)
        return pin is not None and bool(sha256) and pin.sha256 == sha256

    def all(self) -> list[TrustedFile]:
        """Every pin, by path."""
        return sorted(self._pins.values(), key=lambda pin: pin.path)

    async def trust(self, path: str, sha256: str, by: str = "") -> TrustedFile:
        """Trust ``path`` at the content hashed ``sha256`` (replacing an older pin)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256[:80]!r}")
        pin = TrustedFile(
            path=os.path.normpath(path), sha256=sha256, trusted_at=time.time(), by=by[:64]
        )
        async with self._lock:
            await self._store.write(
                lambda db: db.execute(
                    "INSERT INTO trusted_files (path, sha256, trusted_at, by) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256,"
                    " trusted_at = excluded.trusted_at, by = excluded.by",
                    (pin.path, pin.sha256, pin.trusted_at, pin.by),
                ),
                what=f"trusting {pin.path}",
                durable=True,
            )
        self._pins[pin.path] = pin
        return pin

    async def revoke(self, path: str) -> TrustedFile | None:
        """Forget the pin of ``path``; the pin removed, or None if there was none."""
        path = os.path.normpath(path)
        async with self._lock:
            row = await self._store.write(
                lambda db: db.execute(
                    f"DELETE FROM trusted_files WHERE path = ? RETURNING {_COLUMNS}", (path,)
                ).fetchone(),
                what=f"untrusting {path}",
                durable=True,
            )
        self._pins.pop(path, None)
        return _row(row) if row is not None else None
