"""Shared set-up for the benchmarks: a real daemon, a workspace, figures."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from pathlib import Path

from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.fixtures import git_repo


def workspace() -> Path:
    return git_repo(Path(tempfile.mkdtemp(prefix="kfd-bench-")) / "repo")


def daemon(base_url: str, config: str = "") -> KfdDaemon:
    class Endpoint:
        pass

    endpoint = Endpoint()
    endpoint.base_url = base_url  # type: ignore[attr-defined]
    return KfdDaemon(model=endpoint, config=FAST_RETRIES + config)  # type: ignore[arg-type]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50):.2f} {unit}, p99 {percentile(values, 99):.2f} {unit}, "
        f"mean {statistics.fmean(values):.2f} {unit}, n={len(values)}"
    )


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def machine() -> str:
    cpus = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{cpus} cores"
