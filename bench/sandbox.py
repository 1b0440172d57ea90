"""What the sandbox adds to one bash command, and where the time goes.

Four figures for ``true`` run the way the bash tool runs it (a shell in its
own session): unconfined; under the bare bubblewrap sandbox kfd used before
containment by construction (the base namespaces, the workspace bound, a
private /tmp); under today's full confinement (credentials hidden, sockets
covered, .git and start-up files protected, the cache home), prepared per
command as a session does (`kfd.sandbox.reuse`: the previous command's
layout, checked); and the preparation alone (`kfd.sandbox.confine`: the
facts checked or gathered in a thread, the arguments built). Then the CPU
each costs: the processes of one command (bubblewrap's inner process
included), and preparing. The workspace is a real git repository under a
``$HOME`` holding the credential stores the sandbox hides.

On a loaded machine the wall times mostly measure the wait for a CPU: run it
as ``chrt -f 10 .venv/bin/python bench/sandbox.py`` (as root) for figures
close to an idle machine's. Run as root, the full sandbox also hides
``/etc/shadow`` and ``/etc/gshadow`` (two more bind mounts).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import summary

from kfd import sandbox
from kfd.sandbox.mounts import base

RUNS = 200


async def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    await process.wait()


async def measure(workspace: Path) -> None:
    shell = shutil.which("bash") or "/bin/sh"
    bwrap = shutil.which("bwrap")
    if bwrap is None or await sandbox.probe("bwrap", network=False):
        print("sandbox: skipped (bubblewrap cannot run here)")
        return
    env = dict(os.environ)
    bare = [bwrap, *base(False), "--bind", str(workspace), str(workspace), "--chdir"]
    bare += [str(workspace), "--"]
    figures: dict[str, list[float]] = {"unconfined": [], "bare": [], "full": [], "prepare": []}
    for _ in range(RUNS):
        started = time.perf_counter()
        await _run([shell, "-c", "true"], workspace, env)
        figures["unconfined"].append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await _run([*bare, shell, "-c", "true"], workspace, env)
        figures["bare"].append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        confinement = await sandbox.confine(workspace)
        prepared = time.perf_counter()
        await _run([*confinement.prefix, shell, "-c", "true"], workspace, confinement.env)
        await confinement.finish()
        done = time.perf_counter()
        figures["full"].append((done - started) * 1000)
        figures["prepare"].append((prepared - started) * 1000)
    for name, timings in figures.items():
        print(f"{name:>10}: {summary(timings)}")
    median = {name: sorted(t)[len(t) // 2] for name, t in figures.items()}
    print(f"added by the bare sandbox: {median['bare'] - median['unconfined']:.2f} ms (p50)")
    print(f"added by full confinement: {median['full'] - median['unconfined']:.2f} ms (p50)")
    print(f"full over bare:            {median['full'] - median['bare']:.2f} ms (p50)")
    arguments = len(confinement.prefix)
    print(f"bubblewrap arguments: {arguments} (bare: {len(bare)})")
    # Wall time on a loaded machine is mostly waiting for a CPU; the CPU the
    # sandbox's processes use says what it costs. bubblewrap's own parent exits
    # without waiting for the child that mounts and runs the command: as a
    # subreaper, the bench reaps that child too and counts its time.
    _subreaper()
    commands = {
        "unconfined": ([shell, "-c", "true"], env),
        "bare": ([*bare, shell, "-c", "true"], env),
        "full": ([*confinement.prefix, shell, "-c", "true"], confinement.env),
    }
    cpu = {name: _cpu(argv, workspace, variables) for name, (argv, variables) in commands.items()}
    print(
        f"CPU per command: unconfined {cpu['unconfined']:.2f} ms, bare {cpu['bare']:.2f} ms, "
        f"full {cpu['full']:.2f} ms (+{cpu['full'] - cpu['bare']:.2f} over bare, "
        "without preparing)"
    )
    prepare_cpu = await _prepare_cpu(workspace)
    print(f"CPU to prepare: {prepare_cpu:.3f} ms (the event loop's thread and the worker's)")


def _subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


PR_SET_CHILD_SUBREAPER = 36


def _cpu(argv: list[str], cwd: Path, env: dict[str, str], runs: int = 100) -> float:
    """User and system CPU of the processes of one command, in ms (median of ``runs``)."""
    used = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        process.wait()
        while True:  # the orphans handed to us (bubblewrap's inner process)
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return sorted(used)[len(used) // 2] * 1000


async def _prepare_cpu(workspace: Path, runs: int = 200) -> float:
    """CPU time of `sandbox.confine` per command, in ms (this process, all threads)."""
    started = time.process_time()
    for _ in range(runs):
        await sandbox.confine(workspace)
    return (time.process_time() - started) / runs * 1000


def main() -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as root:
        home = Path(root) / "home"
        for name in (".ssh", ".aws", ".config/gcloud", ".kube", ".gnupg", ".docker"):
            (home / name).mkdir(parents=True)
        (home / ".netrc").write_text("")
        (home / ".docker" / "config.json").write_text("{}")
        os.environ["HOME"] = str(home)
        os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
        workspace = Path(root) / "repo"
        subprocess.run(["git", "init", "-q", str(workspace)], check=True)
        (workspace / "README.md").write_text("# demo\n")
        asyncio.run(measure(workspace))


if __name__ == "__main__":
    main()
