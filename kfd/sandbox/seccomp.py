"""The system calls no sandboxed program may make: a seccomp filter for every bubblewrap.

A hard link made in the sandbox could give a file a second name that kfd's
remembered listings never see change: made from another directory, it leaves
the file's own directory as it was, and a read rule's secret written in
place into the new name later is then read, without asking, through the
old one (round 19). So nothing in the sandbox makes a hard link: ``link``
and ``linkat`` fail with ``EXDEV``, the error of a link across file systems,
which tools that can copy instead already handle (git, cargo, pnpm, ``cp -l``
says so). ``io_uring`` is refused outright (``ENOSYS``, as where it is built
out): its ``IORING_OP_LINKAT`` makes links without a system call a filter sees.
And no whiteout is made (a 0:0 character device, `REFUSED_WHEN`; round 21).

The filter is compiled by libseccomp (the library made for this: it knows
each architecture's system call numbers and the compatible ones a program
may switch to, 32-bit x86 and x32 on x86-64), once per daemon, and handed to
bubblewrap by a file in kfd's runtime directory (out of the sandbox's sight):
`prefix` opens it on the descriptor ``--seccomp`` names, so a library that
starts the sandbox itself (an MCP or language server's) passes it too.
Without libseccomp no sandbox starts (`problem` says why): a sandbox in which
links can be made is not the one kfd's checks assume.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from kfd import paths
from kfd.regular import read_regular

__all__ = ["problem", "program", "wrap"]

REFUSED = {
    "link": errno.EXDEV,
    "linkat": errno.EXDEV,
    "io_uring_setup": errno.ENOSYS,
    "io_uring_enter": errno.ENOSYS,
    "io_uring_register": errno.ENOSYS,
}
"""System calls refused in the sandbox, with the error each gives."""
REFUSED_WHEN = {
    # A whiteout (a 0:0 character device any user may make since Linux 5.8): no
    # device node in a workspace, where the host's tools would meet it.
    "renameat2": (4, 0o4, 0o4),  # flags & RENAME_WHITEOUT
    "mknod": (1, 0o170000, 0o020000),  # mode & S_IFMT == S_IFCHR
    "mknodat": (2, 0o170000, 0o020000),
}
"""System calls refused (``EPERM``) when an argument, masked, has a value: the
argument's index, the mask and the value."""
COMPATIBLE = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}
"""The other architectures a program on this one may call the kernel as."""
DESCRIPTOR = 9
"""The descriptor bubblewrap reads the filter from (`wrap`)."""

_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_CMP_MASKED_EQ = 7


class _ArgumentTest(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class SeccompUnavailable(Exception):
    """libseccomp cannot be loaded or cannot compile the filter."""


@functools.cache
def program() -> bytes:
    """The compiled filter (classic BPF, as bubblewrap's ``--seccomp`` reads it)."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp cannot be loaded ({exc})") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgumentTest),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(_ACT_ALLOW)
    if not context:
        raise SeccompUnavailable("libseccomp could not start a filter")
    try:
        for arch in COMPATIBLE.get(os.uname().machine, ()):
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token and lib.seccomp_arch_add(context, token) not in (0, -errno.EEXIST):
                raise SeccompUnavailable(f"libseccomp cannot add the {arch} architecture")
        for call, error in REFUSED.items():
            number = lib.seccomp_syscall_resolve_name(call.encode())
            if number < 0:
                continue  # not a system call here (aarch64 has no `link`)
            if lib.seccomp_rule_add(context, _ACT_ERRNO | error, number, 0) != 0:
                raise SeccompUnavailable(f"libseccomp cannot refuse {call}")
        for call, (index, mask, value) in REFUSED_WHEN.items():
            number = lib.seccomp_syscall_resolve_name(call.encode())
            if number < 0:
                continue  # aarch64 has no `mknod`
            test = _ArgumentTest(index, _CMP_MASKED_EQ, mask, value)
            action = _ACT_ERRNO | errno.EPERM
            if lib.seccomp_rule_add_array(context, action, number, 1, ctypes.byref(test)) != 0:
                raise SeccompUnavailable(f"libseccomp cannot refuse {call} so")
        memory = os.memfd_create("kfd-seccomp", os.MFD_CLOEXEC)
        try:
            if lib.seccomp_export_bpf(context, memory) != 0:
                raise SeccompUnavailable("libseccomp could not write the filter")
            size = os.lseek(memory, 0, os.SEEK_CUR)
            return os.pread(memory, size, 0)
        finally:
            os.close(memory)
    finally:
        lib.seccomp_release(context)


def problem() -> str | None:
    """Why no sandbox can have the filter here, or None."""
    try:
        program()
    except SeccompUnavailable as exc:
        return f"{exc} (Debian and Ubuntu: apt install libseccomp2)"
    return None


def _file(runtime: str) -> str:
    """The filter in kfd's runtime directory (hidden from every sandbox; insisted on
    ours and private at each use, as at the daemon's start: one cleaned at logout
    could be made again by another user first), written when missing or not the
    filter (a first start, a cleaned directory), named by its content so no daemon
    reads another's half-written one."""
    data = program()
    path = paths.ensure_private_dir(Path(runtime)) / _name()
    try:
        holds = read_regular(path, len(data), follow=False) == data
    except OSError:  # nothing there, a link, a FIFO, more than the filter
        holds = False
    if not holds:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.chmod(0o600)
        partial.replace(path)
    return str(path)


@functools.cache
def _name() -> str:
    return f"seccomp-{hashlib.sha256(program()).hexdigest()[:16]}.bpf"


def wrap(bwrap: str, options: Sequence[str]) -> list[str]:
    """``bwrap <options>`` started by a shell that first opens the filter on `DESCRIPTOR`
    (bubblewrap has no option that reads it from a path), as one argv any spawner runs."""
    script = f'exec {DESCRIPTOR}<"$0" && exec "$@"'
    filter_file = _file(str(paths.runtime_dir()))
    return ["/bin/sh", "-c", script, filter_file, bwrap, "--seccomp", str(DESCRIPTOR), *options]
