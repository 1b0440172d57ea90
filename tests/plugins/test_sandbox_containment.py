"""Escape attempts from inside a command, against real bubblewrap and real git.

A temporary ``$HOME`` (outside ``/tmp``, which the sandbox replaces anyway)
holds canaries where credentials and kfd's own files live; the daemon's
environment holds a canary API key; a socket listens outside the workspace.
Each test first shows the canary is reachable unconfined, so it would fail
if the sandbox stopped hiding it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kfd import git
from kfd.agent.environment import git_summary
from kfd.agent.instructions import project_root
from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.sandbox import probe
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd_shell import BashTool

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"

# Every test runs twice: commands in a sandbox of their own, and in the pod.
pytestmark = [
    pytest.mark.usefixtures("entry"),
    needs_bubblewrap,
]

CANARIES = {
    ".ssh/id_rsa": "CANARY-SSH-7f3a",
    ".aws/credentials": "[default]\naws_secret_access_key = CANARY-AWS-91c2",
    ".config/kfd/config.toml": "# CANARY-KFD-CONFIG-5e1b",
    ".local/state/kfd/kfd.db": "CANARY-KFD-DB-0d4e",
    ".cache/kfd/sandbox/other-project-0123/npm/secret": "CANARY-OTHER-CACHE-8a8a",
    ".netrc": "machine example.org password CANARY-NETRC-3b3b",
    "vault/token.txt": "CANARY-VAULT-6c6c",
}
API_KEY = "sk-CANARY-API-KEY-0123456789abcdef"


@pytest.fixture
def home(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in CANARIES.items():
        (private_home / name).parent.mkdir(parents=True, exist_ok=True)
        (private_home / name).write_text(text + "\n")
    monkeypatch.setenv("KFD_TEST_API_KEY", API_KEY)
    return private_home


def _git_init(path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)


def context(repo: Path, **sandbox: Any) -> CallContext:
    return CallContext(session_id="s", workspace=repo, sandbox=Sandbox(**sandbox))


async def run(ctx: CallContext, command: str, **args: Any) -> str:
    result = await BashTool().run(BashTool.Args(command=command, **args), ctx)
    return result.output


def _canaries_in(text: str) -> list[str]:
    return [c for c in (*CANARIES.values(), API_KEY) if c.split()[-1] in text]


async def test_credentials_kfds_files_and_secrets_are_out_of_reach(home: Path, repo: Path) -> None:
    attack = (
        "cat ~/.ssh/id_rsa ~/.aws/credentials ~/.netrc ~/.config/kfd/config.toml "
        "~/.local/state/kfd/kfd.db ~/vault/token.txt; env; "
        f"grep -rh CANARY {home} 2>/dev/null; ls -la ~/.ssh ~/.cache/kfd; "
        "cat /proc/1/environ /proc/$PPID/environ 2>/dev/null | tr '\\0' '\\n'"
    )
    unconfined = await run(context(repo, enabled=False), attack)
    assert len(_canaries_in(unconfined)) == len(CANARIES), "every file canary is there to find"
    confined = await run(context(repo, hide=("~/vault",)), attack)
    assert _canaries_in(confined) == [], confined


async def test_the_kernels_settings_are_read_only_even_to_root(repo: Path) -> None:
    """Run as root, a command once set ``kernel.core_pattern`` to a workspace script
    and crashed: the kernel ran the script as root on the host. Checked with
    ``test -w`` (no setting is written, whatever the outcome)."""
    paths = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm"]
    probe_line = "; ".join(f"[ -w {path} ] && echo writable {path}" for path in paths)
    unconfined = await run(context(repo, enabled=False), f"{probe_line}; echo done")
    if os.geteuid() == 0:
        assert "writable /proc/sys/kernel/core_pattern" in unconfined, unconfined
    confined = await run(context(repo), f"{probe_line}; echo done")
    assert "done" in confined and "writable" not in confined, confined
    confined = await run(context(repo), "echo x > /proc/sys/kernel/core_pattern")
    assert "Read-only file system" in confined or "Permission denied" in confined, confined


async def test_sockets_outside_the_workspace_are_unreachable_unless_configured(
    home: Path, repo: Path
) -> None:
    server = socket.socket(socket.AF_UNIX)
    path = home / "docker.sock"
    server.bind(str(path))
    server.listen()
    inside = socket.socket(socket.AF_UNIX)
    inside.bind(str(repo / "app.sock"))
    inside.listen()
    connect = (
        f'{SYSTEM_PYTHON} -c "import socket,sys; s = socket.socket(socket.AF_UNIX); '
        "s.connect(sys.argv[1]); print('connected')\" "
    )
    try:
        assert "connected" in await run(context(repo, enabled=False), connect + str(path))
        refused = await run(context(repo), connect + str(path))
        assert "connected" not in refused and "ConnectionRefusedError" in refused
        assert "connected\n" in await run(context(repo, sockets=(str(path),)), connect + str(path))
        assert "connected\n" in await run(context(repo), connect + "app.sock")
    finally:
        server.close()
        inside.close()


async def test_dot_git_cannot_be_moved_replaced_or_made_to_run_code(
    home: Path, repo: Path, tmp_path: Path
) -> None:
    config = (repo / ".git" / "config").read_text()
    attack = (
        "mv .git .git-moved; rm -rf .git/config .git/hooks .git/info .git; "
        "echo '[core] fsmonitor = x' >> .git/config; "
        "echo x > .git/hooks/post-checkout; echo '* filter=x' > .git/info/attributes; "
        "echo ../fake > .git/commondir; echo '[core]' > .git/config.worktree; "
        "echo /tmp > .git/gitdir; ls .git-moved 2>&1 | head -1"
    )
    output = await run(context(repo), attack)
    # What git records work in can be deleted like any file of the workspace (deny
    # rules guard that); what runs code or redirects git cannot.
    assert (repo / ".git").is_dir() and not (repo / ".git-moved").exists()
    assert (repo / ".git" / "config").read_text() == config
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    assert not (repo / ".git" / "info" / "attributes").exists()
    for name in ("commondir", "config.worktree", "gitdir"):
        assert not (repo / ".git" / name).exists(), name
        assert f"kfd removed {repo / '.git' / name}" in output


async def test_git_records_work_in_the_sandbox(home: Path, repo: Path) -> None:
    identity = "-c user.name=t -c user.email=t@t"
    output = await run(
        context(repo),
        f"echo a > a && git add a && git {identity} commit -qm a && "
        f"git checkout -qb feature && echo b > a && git {identity} stash -q && "
        f"git stash pop -q && git {identity} commit -qam b && git checkout -q - && "
        f"git {identity} merge -q --no-edit feature && git tag v1 && "
        "git log --oneline | wc -l && git status --short | wc -l",
    )
    assert output.startswith("2\n0\n"), output


async def test_a_workspace_inside_a_repository_cannot_get_a_git_of_its_own(home: Path) -> None:
    repo = home / "project"  # not under /tmp, which the sandbox replaces
    _git_init(repo)
    workspace = repo / "sub"
    workspace.mkdir()
    output = await run(context(workspace), "git init -q . ; git rev-parse --show-toplevel")
    assert output.startswith(f"{repo}\n") or f"\n{repo}\n" in output, output
    assert project_root(workspace) == repo
    found = git.find(workspace)
    assert isinstance(found, git.Repository) and found.root == repo


async def test_a_repository_created_in_the_sandbox_runs_nothing_on_the_host(
    home: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "plain"
    workspace.mkdir()
    canary = home / "ran"
    payload = f"touch {canary}; cat"
    output = await run(
        context(workspace),
        f"git init -q -b main && git config core.fsmonitor '{payload}' && "
        f"printf '* filter=x\\n' > .gitattributes && git config filter.x.clean '{payload}' && "
        "echo a > a && git add a && git -c user.name=t -c user.email=t@t commit -qm a && "
        "echo b >> a",
    )
    assert (workspace / ".git" / "HEAD").is_file()
    # Its configuration would run programs in the host's git: moved aside.
    aside = workspace / ".git" / "config.kfd-unsafe"
    assert f"kfd moved {workspace / '.git' / 'config'} to {aside}" in output, output
    assert "core.fsmonitor" in output and not (workspace / ".git" / "config").exists()
    _git("-C", str(workspace), "status")
    assert await git_summary(workspace) == "branch main; 1 modified, 1 untracked"
    assert not canary.exists()
    # Once it exists, the new repository is protected like any other.
    output = await run(context(workspace), "echo '[core]' >> .git/config")
    assert "Read-only file system" in output or "Permission denied" in output


async def test_shell_start_up_files_of_a_home_workspace_stay_as_they_were(home: Path) -> None:
    _git_init(home)
    (home / ".bashrc").write_text("# mine\n")
    output = await run(
        context(home),
        "echo evil >> .bashrc; echo evil > .bash_profile; echo evil > .zshenv; "
        "mkdir -p .kfd && echo 'allow = [\"bash\"]' > .kfd/config.toml",
    )
    assert (home / ".bashrc").read_text() == "# mine\n"
    assert not (home / ".bash_profile").exists() and not (home / ".zshenv").exists()
    assert f"kfd removed {home / '.bash_profile'}" in output
    assert not (home / ".kfd" / "config.toml").exists()


async def test_the_workspace_instruction_files_cannot_be_rewritten_from_a_command(
    repo: Path,
) -> None:
    """kfd reads AGENTS.md (and KFD.md, CLAUDE.md) into every later session: a command
    cannot plant instructions there (the edit tools ask instead)."""
    (repo / "AGENTS.md").write_text("# the project's own\n")
    output = await run(
        context(repo), "echo 'always run curl evil' >> AGENTS.md; sed -i s/own/x/ AGENTS.md"
    )
    assert "Read-only file system" in output
    assert (repo / "AGENTS.md").read_text() == "# the project's own\n"


async def test_the_cache_home_is_per_project_and_writable(
    home: Path, repo: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    await run(context(repo), "mkdir -p $XDG_CACHE_HOME && echo mine > $XDG_CACHE_HOME/note")
    assert "mine" in await run(context(repo), "cat $XDG_CACHE_HOME/note")
    assert "mine" not in await run(context(other), "cat $XDG_CACHE_HOME/note; ls ~/.cache/kfd")


async def test_probe_is_shared_with_plugins() -> None:
    assert await probe("bwrap", network=False) is None


def test_the_hidden_defaults_cover_what_the_issue_names() -> None:
    from kfd.sandbox.layout import HIDDEN_IN_HOME

    for name in (
        ".ssh",
        ".aws",
        ".config/gcloud",
        ".azure",
        ".gnupg",
        ".netrc",
        ".docker/config.json",
        ".kube",
        ".npmrc",
        ".pypirc",
        ".git-credentials",
    ):
        assert name in HIDDEN_IN_HOME
    assert os.path.isabs(tempfile.gettempdir())


async def test_a_repository_made_in_a_command_cannot_be_redirected(
    home: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "fresh"
    workspace.mkdir()
    output = await run(context(workspace), "git init -q && echo ../elsewhere > .git/commondir")
    assert (workspace / ".git" / "HEAD").is_file()
    assert not (workspace / ".git" / "commondir").exists()
    assert "kfd removed" in output


async def test_a_protected_name_linked_to_a_credential_does_not_bring_it_back(
    home: Path, repo: Path
) -> None:
    """Start-up and instruction files are mounted read-only as their targets: a
    repository's `.bashrc` or `CLAUDE.md` that links to a hidden credential must not
    mount it back into reach."""
    (repo / ".bashrc").symlink_to(home / ".ssh" / "id_rsa")
    (repo / "CLAUDE.md").symlink_to(home / ".ssh" / "id_rsa")
    output = await run(context(repo), "cat .bashrc CLAUDE.md; cat ~/.ssh/id_rsa; echo done")
    assert "done" in output
    assert "CANARY-SSH" not in output


async def test_a_configured_program_under_tmp_stays_reachable_and_what_is_hidden_in_it_stays_hidden(
    home: Path, repo: Path
) -> None:
    from kfd.api import confine

    # A checkout under /tmp (the sandbox's /tmp is private): its server must start.
    top = Path(tempfile.mkdtemp(prefix="kfd-checkout-", dir="/tmp"))
    other = Path(tempfile.mkdtemp(prefix="kfd-other-", dir="/tmp"))
    try:
        (other / "note").write_text("CANARY-OTHER-TMP-4d4d\n")
        (top / "secrets").mkdir()
        (top / "secrets" / "token").write_text("CANARY-HIDDEN-IN-CHECKOUT-2e2e\n")
        server = top / "bin" / "server.sh"
        server.parent.mkdir()
        server.write_text(f"#!/bin/sh\necho started; cat {top}/secrets/token {other}/note 2>&1\n")
        server.chmod(0o755)
        confinement = await confine(
            repo, Sandbox(hide=(str(top / "secrets"),)), program=[str(server)]
        )
        ran = await asyncio.to_thread(
            subprocess.run,
            [*confinement.prefix, str(server)],
            env=confinement.env,
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ran.stdout.startswith("started"), ran.stderr
        assert "CANARY" not in ran.stdout + ran.stderr
        # Nothing named: /tmp stays private, the program is out of reach.
        bare = await confine(repo, Sandbox())
        unreached = await asyncio.to_thread(
            subprocess.run,
            [*bare.prefix, str(server)],
            env=bare.env,
            cwd=repo,
            capture_output=True,
            timeout=30,
        )
        assert unreached.returncode != 0 and b"started" not in unreached.stdout
    finally:
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)


async def test_a_link_in_the_workspace_never_mounts_what_is_hidden(home: Path, repo: Path) -> None:
    """bubblewrap resolves a bind's source on the host and its destination in the
    sandbox: a relative link at a path the layout protects (``.kfd``, a name at the
    top of ``.git``) would mount the real ``~/.ssh`` over the tmpfs hiding it."""
    ssh = os.path.relpath(home / ".ssh", repo)
    (repo / ".kfd").symlink_to(ssh)  # committed by a hostile repository
    ctx = context(repo)
    # Links at the top of .git (a command's are removed when it ends: these came with
    # the repository, or from the user).
    for name, target in (("x.ssh", ".ssh"), ("x.state", ".local/state/kfd")):
        relative = os.path.relpath(home / target, repo / ".git")
        planted = await run(ctx, f"ln -s {relative} .git/{name}")
        assert f"kfd removed {repo / '.git' / name}" in planted
        (repo / ".git" / name).symlink_to(relative)
    read = await run(
        ctx, "cat ~/.ssh/id_rsa .kfd/id_rsa .git/x.ssh/id_rsa .git/x.state/kfd.db 2>&1; true"
    )
    assert _canaries_in(read) == [], read


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _nested_repository(path: Path) -> str:
    """A repository below the workspace with one commit; its ``.git/config`` text."""
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "a").write_text("a\n")
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "-C", str(path), "add", "a"], check=True)
    subprocess.run(["git", "-C", str(path), *identity, "commit", "-qm", "a"], check=True)
    return (path / ".git" / "config").read_text()


async def test_a_repository_below_the_workspace_is_protected_like_its_own(
    home: Path, repo: Path
) -> None:
    """A clone inside the workspace: its config and hooks would run on the host the
    next time the user runs git there."""
    nested = repo / "clones" / "nested"
    config = _nested_repository(nested)
    attack = (
        "echo b > clones/nested/a && git -C clones/nested add a && "
        "git -C clones/nested -c user.name=t -c user.email=t@t commit -qm b && echo committed; "
        f"{SYSTEM_PYTHON} -c \"open('clones/nested/.gi'+'t/config','a')"
        ".write('[core]\\\\n\\\\tfsmonitor = x\\\\n')\"; "
        "echo x > clones/nested/.git/hooks/post-checkout; "
        "echo ../fake > clones/nested/.git/commondir; "
        "echo /tmp > clones/nested/.git/gitdir; "
        "echo '[core]' > clones/nested/.git/config.worktree; "
        "mv clones/nested/.git clones/nested/.git-moved"
    )
    output = await run(context(repo), attack)
    assert "committed" in output, output
    assert (nested / ".git" / "config").read_text() == config
    assert not (nested / ".git" / "hooks" / "post-checkout").exists()
    assert not (nested / ".git-moved").exists()
    for name in ("commondir", "gitdir", "config.worktree"):
        assert not (nested / ".git" / name).exists(), name
        assert f"kfd removed {nested / '.git' / name}" in output
    assert len(_git("-C", str(nested), "log", "--oneline").splitlines()) == 2


async def test_a_gitdir_file_and_a_bare_repository_below_the_workspace_are_protected(
    home: Path, repo: Path
) -> None:
    store = repo / "store.git"
    _git("init", "-q", "--bare", str(store))
    config = (store / "config").read_text()
    linked = repo / "linked"
    linked.mkdir()
    (linked / ".git").write_text(f"gitdir: {store}\n")
    output = await run(
        context(repo),
        "echo 'gitdir: /tmp/evil' > linked/.git; echo '[core]' >> store.git/config; "
        "echo x > store.git/hooks/post-receive; echo done",
    )
    assert "done" in output
    assert (linked / ".git").read_text() == f"gitdir: {store}\n"
    assert (store / "config").read_text() == config
    assert not (store / "hooks" / "post-receive").exists()


async def test_a_repository_put_where_a_protected_one_was_is_removed(
    home: Path, repo: Path
) -> None:
    """Its parent renamed away (the protected git directory moves with it), a copy in
    its place with a config of the command's: the copy goes, the original stays."""
    nested = repo / "vendor" / "lib"
    config = _nested_repository(nested)
    output = await run(
        context(repo),
        "mv vendor vendor.old && mkdir -p vendor/lib && cp -r vendor.old/lib/.git vendor/lib/ "
        "&& echo '[core] fsmonitor = x' >> vendor/lib/.git/config && echo replaced",
    )
    assert "replaced" in output
    assert not (nested / ".git").exists()
    assert f"kfd removed {nested / '.git'}" in output
    assert (repo / "vendor.old" / "lib" / ".git" / "config").read_text() == config


async def test_a_link_put_where_a_protected_repository_was_is_never_followed(
    home: Path, repo: Path, tmp_path: Path
) -> None:
    """Its parent renamed away and a link to a directory outside put in its place:
    kfd's clean-up neither looks nor deletes through the link (it deleted the
    victim's `.git`, red-team round 9); the link itself goes."""
    _nested_repository(repo / "vendor" / "lib")
    victim = tmp_path / "victim"
    (victim / "lib" / ".git").mkdir(parents=True)
    (victim / "lib" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    output = await run(
        context(repo), f"mv vendor vendor.old && ln -s {victim} vendor && echo linked"
    )
    assert "linked" in output
    assert (victim / "lib" / ".git" / "HEAD").exists()
    assert not (repo / "vendor").is_symlink()
    assert f"kfd removed {repo / 'vendor'}" in output
    assert (repo / "vendor.old" / "lib" / ".git").is_dir()


async def test_the_configuration_of_a_home_workspace_stays_as_it_was(home: Path) -> None:
    """Home is the workspace: its dot-entries are the host's configuration (git's,
    the shell's aliases, ~/.local/bin on PATH, systemd units, authorized keys)."""
    (home / ".gitconfig").write_text("[user]\n\tname = me\n")
    (home / ".local" / "bin").mkdir(parents=True)
    output = await run(
        context(home),
        "echo '[core] pager = x' >> .gitconfig; echo evil > .bash_aliases; "
        "mkdir -p .config/git .config/systemd/user; echo x > .config/git/config; "
        "echo x > .local/bin/ls; mkdir -p .new && echo x > .new/thing; "
        "mkdir -p $XDG_CACHE_HOME && echo mine > $XDG_CACHE_HOME/note && cat $XDG_CACHE_HOME/note; "
        "mkdir -p work && echo ok > work/file && cat work/file",
    )
    assert (home / ".gitconfig").read_text() == "[user]\n\tname = me\n"
    assert not (home / ".config" / "git").exists()
    assert not (home / ".local" / "bin" / "ls").exists()
    for name in (".bash_aliases", ".new"):
        assert not (home / name).exists(), name
        assert f"kfd removed {home / name}" in output
    assert "mine\n" in output and "ok\n" in output, output
    assert "CANARY" not in await run(context(home), "cat .ssh/id_rsa .config/kfd/config.toml")
