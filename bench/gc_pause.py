"""How long the daemon stalls in a full garbage collection, start-up frozen or not.

A daemon is started in this process (in a private XDG environment) and, once it
serves, every object start-up made has been frozen out of the collector's
reach (`gc.freeze`, `kfd.daemon.server`). Printed: the objects the collector
still tracks and a full collection's pause, then the same with start-up's
objects given back to the collector (what each full collection cost before).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time

from common import percentile

RUNS = 20


def pauses() -> list[float]:
    found = []
    for _ in range(RUNS):
        started = time.perf_counter()
        gc.collect()
        found.append((time.perf_counter() - started) * 1000)
    return found


async def measure() -> None:
    from kfd import config as config_module
    from kfd.daemon.server import Daemon

    serving = asyncio.create_task(Daemon(config_module.load()).run())
    deadline = time.monotonic() + 60
    while gc.get_freeze_count() == 0:  # the daemon freezes start-up once it serves
        if serving.done() or time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not start: {serving}")
        await asyncio.sleep(0.05)
    for label in ("start-up frozen (kfd)", "nothing frozen (before)"):
        tracked = len(gc.get_objects())
        figures = pauses()
        print(
            f"full collection, {label}: {tracked} objects tracked, pause p50 "
            f"{percentile(figures, 50):.2f} ms, max {max(figures):.2f} ms"
        )
        gc.unfreeze()
    os._exit(0)  # the daemon's own stop is not what is measured


def main() -> None:
    root = tempfile.mkdtemp(prefix="kfd-gc-")
    for name in ("CONFIG", "STATE", "RUNTIME", "CACHE", "DATA"):
        directory = os.path.join(root, name.lower())
        os.makedirs(directory, mode=0o700)
        os.environ[f"XDG_{name}_HOME" if name != "RUNTIME" else "XDG_RUNTIME_DIR"] = directory
    asyncio.run(measure())


if __name__ == "__main__":
    main()
