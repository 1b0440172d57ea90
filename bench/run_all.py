"""Run every benchmark and print its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = ["run_latency.py", "tool_steps.py", "idle_memory.py", "fanout.py"]

for name in BENCHMARKS + sorted(
    p.name
    for p in HERE.glob("*.py")
    if p.name
    not in {
        *BENCHMARKS,
        "run_all.py",
        "common.py",
        "stream_server.py",
        "subscriber.py",
        "load_subscriber.py",
        "tagged_stream_server.py",
    }
):
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, str(HERE / name)], cwd=HERE, check=False)
