"""Whether bubblewrap can start a sandbox on this machine, asked once per test process.

``pytestmark = needs_bubblewrap`` (or in a list of marks) skips a test module
where it cannot, saying why (`kfd.sandbox.probe`).
"""

from __future__ import annotations

import asyncio

import pytest

from kfd.sandbox import probe

__all__ = ["PROBLEM", "needs_bubblewrap"]

PROBLEM = asyncio.run(probe("bwrap", network=False))
"""Why bubblewrap cannot start a sandbox here, or None."""
needs_bubblewrap = pytest.mark.skipif(
    PROBLEM is not None, reason=f"bubblewrap cannot run here: {PROBLEM}"
)
