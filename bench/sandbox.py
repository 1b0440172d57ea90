"""What the sandbox adds to one bash command, and where the time goes.

Five figures for ``true`` run the way the bash tool runs it (a shell in its
own session): unconfined; under the bare bubblewrap sandbox kfd used before
containment by construction (the base namespaces, the workspace bound, a
private /tmp); under the full confinement (credentials hidden, sockets
covered, .git and start-up files protected, the cache home) in a bubblewrap
of its own, prepared per command as a session does (`kfd.sandbox.reuse`:
the previous command's layout, checked); the path bash takes, the same
preparation then the session's pod (`kfd.sandbox.pod`: one message, the
command forked in the long-lived sandbox, every process of the
command gone before the answer); and the preparation alone
(`kfd.sandbox.confine`: the facts checked or gathered in a thread, the
arguments built). Then the CPU each costs: the processes of one command
(bubblewrap's inner process included; in the pod, the zygote's work
and the command, which it reaps), and preparing. The workspace
is a real git repository under a ``$HOME`` holding the credential stores the
sandbox hides.

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
from kfd.sandbox import layout
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
    figures: dict[str, list[float]] = {
        "unconfined": [],
        "bare": [],
        "full": [],
        "pod": [],
        "prepare": [],
    }
    # The layout is remembered (and a pod started) once its stamps are older than
    # the file system's clock can tell apart (`kfd.sandbox.layout.RACY_NS`): after
    # the first command made the cache home and bubblewrap's stand-ins.
    await _in_pod(workspace, shell)
    await asyncio.sleep(layout.RACY_NS / 1e9 + 0.1)
    for _ in range(3):
        await _in_pod(workspace, shell)
    if not sandbox.pod.zygotes():
        print("pod: did not start (the figures below are for sandboxes of their own)")
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

        started = time.perf_counter()
        await _in_pod(workspace, shell)
        figures["pod"].append((time.perf_counter() - started) * 1000)
    for name, timings in figures.items():
        print(f"{name:>10}: {summary(timings)}")
    median = {name: sorted(t)[len(t) // 2] for name, t in figures.items()}
    print(f"added by the bare sandbox: {median['bare'] - median['unconfined']:.2f} ms (p50)")
    print(f"added by full confinement: {median['full'] - median['unconfined']:.2f} ms (p50)")
    print(f"full over bare:            {median['full'] - median['bare']:.2f} ms (p50)")
    print(f"added by full in a pod:    {median['pod'] - median['unconfined']:.2f} ms (p50)")
    arguments = len(confinement.prefix)
    print(f"bubblewrap arguments: {arguments} (bare: {len(bare)})")
    pod_cpu = await _pod_cpu(workspace, shell)
    sandbox.pod.close()  # before reaping every orphan below: a pod never ends by itself
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
    print(
        f"CPU per command in a pod: {pod_cpu:.2f} ms (preparing, the daemon's side, the "
        f"zygote and the command; unconfined {cpu['unconfined']:.2f} ms, full in a "
        f"bubblewrap of its own {cpu['full'] + prepare_cpu:.2f} ms with preparing)"
    )


async def _in_pod(workspace: Path, shell: str) -> None:
    """One command the way bash runs it: prepared, then in the session's pod (or, where
    none takes it, in a bubblewrap of its own)."""
    confinement = await sandbox.confine(workspace)
    read_fd, write_fd = os.pipe()
    try:
        process = await sandbox.pod.enter(
            confinement, [shell, "-c", "true"], cwd=workspace, output=write_fd, owner="bench"
        )
    finally:
        os.close(write_fd)
    if process is None:
        await _run([*confinement.prefix, shell, "-c", "true"], workspace, confinement.env)
    else:
        await process.wait()
    os.close(read_fd)
    await confinement.finish()


def _cpu_of(pid: int) -> float:
    """A process's CPU time and that of its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def _pod_cpu(workspace: Path, shell: str, runs: int = 200) -> float:
    """CPU per command in a pod, in ms: this process (all threads) and the zygote's
    work and its reaped commands."""
    await _in_pod(workspace, shell)
    [zygote] = sandbox.pod.zygotes() or [0]
    if not zygote:
        return float("nan")
    ours, theirs = time.process_time(), _cpu_of(zygote)
    for _ in range(runs):
        await _in_pod(workspace, shell)
    if sandbox.pod.zygotes() != [zygote]:
        return float("nan")
    used = time.process_time() - ours + _cpu_of(zygote) - theirs
    return used / runs * 1000


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
