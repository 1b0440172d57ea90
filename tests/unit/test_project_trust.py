"""A project's .kfd/config.toml only narrows rights until its exact content is trusted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kfd.commands.book import CommandBook
from kfd.config import (
    MAX_PROJECT_CONFIG_BYTES,
    PermissionsConfig,
    ProjectConfig,
    narrow,
    read_project,
)
from kfd.policy.rulebook import CommandPin, RuleBook, TrustConflict
from kfd.protocol import TrustInfo
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore

GRANTING = """\
[permissions]
allow = ["bash", "edit(/**)", "read(/**)"]
ask = ["bash(git push *)"]
deny = ["bash(curl *)"]
defaults = false
"""


def project(allow: list[str], *, defaults: bool = True) -> ProjectConfig:
    permissions = PermissionsConfig(
        allow=allow, ask=["bash(npm *)"], deny=["read(**/secrets/**)"], defaults=defaults
    )
    return ProjectConfig(permissions=permissions)


def test_an_untrusted_project_config_keeps_its_ask_and_deny_rules_and_drops_its_allow_rules() -> (
    None
):
    narrowed = narrow(project(["bash", "edit(/**)"]), trusted=False)
    assert narrowed.permissions.allow == []
    assert narrowed.permissions.ask == ["bash(npm *)"]
    assert narrowed.permissions.deny == ["read(**/secrets/**)"]
    assert narrowed.grants == ["allow bash", "allow edit(/**)"]
    assert narrowed.ignored == [
        "allow bash: not until you trust this file",
        "allow edit(/**): not until you trust this file",
    ]


def test_a_trusted_project_config_applies_its_allow_rules() -> None:
    narrowed = narrow(project(["bash(make *)"]), trusted=True)
    assert narrowed.permissions.allow == ["bash(make *)"]
    assert narrowed.ignored == []


@pytest.mark.parametrize("trusted", [False, True])
def test_defaults_false_is_never_honoured_from_a_project(trusted: bool) -> None:
    narrowed = narrow(project([], defaults=False), trusted=trusted)
    assert narrowed.permissions.defaults is True
    assert any("defaults = false" in line and "your own" in line for line in narrowed.ignored)


def test_a_project_file_is_hashed_exactly_as_it_is_parsed(tmp_path: Path) -> None:
    assert read_project(str(tmp_path)).exists is False
    (tmp_path / ".kfd").mkdir()
    raw = GRANTING.encode()
    (tmp_path / ".kfd" / "config.toml").write_bytes(raw)
    file = read_project(str(tmp_path))
    assert file.exists and not file.problem
    assert file.sha256 == hashlib.sha256(raw).hexdigest()
    assert file.config.permissions.allow == ["bash", "edit(/**)", "read(/**)"]
    assert file.path == str(tmp_path / ".kfd" / "config.toml")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"[permissions\n", "not valid TOML"),
        (b'[permissions]\nallow = ["bash(ls"]\n', "is not a rule"),
        (b'[mcp.servers.x]\ncommand = "sh"\n', "unknown field `mcp`"),
        (b"#" * (MAX_PROJECT_CONFIG_BYTES + 1), "larger than"),
    ],
)
def test_a_project_file_that_does_not_load_says_why_and_grants_nothing(
    tmp_path: Path, content: bytes, says: str
) -> None:
    (tmp_path / ".kfd").mkdir()
    (tmp_path / ".kfd" / "config.toml").write_bytes(content)
    file = read_project(str(tmp_path))
    assert file.exists and says in file.problem
    assert file.config == ProjectConfig()


async def test_trust_is_pinned_to_one_exact_content_and_outlives_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "p" / ".kfd" / "config.toml")
    store = await Store.open(tmp_path / "kfd.db")
    try:
        trust = TrustStore(store)
        await trust.load()
        sha = hashlib.sha256(b"one").hexdigest()
        assert not trust.trusted(path, sha)
        pin = await trust.trust(path, sha, by="kfd-trust")
        assert (pin.path, pin.sha256, pin.by) == (path, sha, "kfd-trust")
        assert trust.trusted(path, sha)
        assert not trust.trusted(path, hashlib.sha256(b"two").hexdigest())
        assert not trust.trusted(path + "x", sha)
        assert not trust.trusted(path, "")
        with pytest.raises(ValueError, match="not a sha256"):
            await trust.trust(path, "abc")
    finally:
        await store.close()
    store = await Store.open(tmp_path / "kfd.db")
    try:
        again = TrustStore(store)
        await again.load()
        assert again.trusted(path, sha)
        assert (await again.revoke(path)) is not None
        assert not again.trusted(path, sha)
        assert await again.revoke(path) is None
    finally:
        await store.close()


@pytest.fixture
async def book(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await Store.open(tmp_path / "kfd.db")
    trust = TrustStore(store)
    await trust.load()
    loaded: list[tuple[str, TrustInfo]] = []
    rule_book = RuleBook(
        PermissionsConfig(),
        RuleStore(store),
        trust,
        on_project_loaded=lambda project, info: loaded.append((project, info)),
    )
    rule_book.loaded = loaded  # type: ignore[attr-defined]
    yield rule_book
    await store.close()


def write(repo: Path, text: str) -> None:
    (repo / ".kfd").mkdir(exist_ok=True)
    path = repo / ".kfd" / "config.toml"
    path.write_text(text)
    # A second write in the same instant must still count as a change.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def sources(applicable: object) -> list[tuple[str, str, str]]:
    return [(r.rule.text, r.decision, r.source) for r in applicable.rules]  # type: ignore[attr-defined]


async def test_the_rule_book_applies_project_allow_rules_only_while_the_content_is_trusted(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    applicable = await book.applicable(str(repo))
    project_rules = [rule for rule in sources(applicable) if rule[2] == "project"]
    assert project_rules == [
        ("bash(curl *)", "deny", "project"),
        ("bash(git push *)", "ask", "project"),
    ]
    assert any(source == "built-in" for _, _, source in sources(applicable))  # defaults stay
    assert "allow read(/**): not until you trust this file" in applicable.ignored

    info = await book.trust_info(str(repo))
    assert not info.trusted and info.pinned is None
    assert info.grants == ["allow bash", "allow edit(/**)", "allow read(/**)"]
    with pytest.raises(TrustConflict, match="changed since it was shown"):
        await book.set_trust(str(repo), "0" * 64)
    trusted = await book.set_trust(str(repo), info.sha256, by="test")
    assert trusted.trusted and trusted.pinned is not None and trusted.pinned.by == "test"

    applicable = await book.applicable(str(repo))
    assert ("read(/**)", "allow", "project") in sources(applicable)
    assert any(source == "built-in" for _, _, source in sources(applicable))  # still
    assert [line for line in applicable.ignored if "defaults" not in line] == []

    write(repo, GRANTING + "# one more line\n")
    applicable = await book.applicable(str(repo))
    assert ("read(/**)", "allow", "project") not in sources(applicable)
    changed = await book.trust_info(str(repo))
    assert not changed.trusted and changed.pinned is not None
    assert changed.pinned.sha256 == info.sha256 != changed.sha256

    revoked = await book.revoke_trust(str(repo))
    assert revoked.pinned is None


async def test_a_broken_or_missing_project_config_cannot_be_trusted(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    with pytest.raises(TrustConflict, match="nothing to trust"):
        await book.set_trust(str(repo), "0" * 64)
    write(repo, "[permissions\n")
    info = await book.trust_info(str(repo))
    assert info.problem and not info.grants
    with pytest.raises(TrustConflict, match="does not load"):
        await book.set_trust(str(repo), info.sha256)


async def test_the_daemon_is_told_when_a_project_config_is_read_anew_not_when_touched(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    await book.applicable(str(repo))
    loaded = book.loaded  # type: ignore[attr-defined]
    assert [(project, info.ignored != []) for project, info in loaded] == [(str(repo), True)]
    path = repo / ".kfd" / "config.toml"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000))  # same content
    await book.applicable(str(repo))
    assert len(loaded) == 1
    write(repo, '[permissions]\ndeny = ["bash(rm *)"]\n')
    await book.applicable(str(repo))
    assert len(loaded) == 2 and loaded[-1][1].ignored == []


async def test_the_listing_shows_what_the_project_config_may_not_do(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    listed = await book.listing(str(repo))
    assert "allow bash: not until you trust this file" in listed.ignored
    assert any("defaults = false" in line for line in listed.ignored)
    assert not [
        rule for rule in listed.rules if rule.source == "project" and rule.decision == "allow"
    ]
    assert any(rule.source == "built-in" for rule in listed.rules)


def project_rules(applicable: object) -> list[tuple[str, str, str]]:
    return [rule for rule in sources(applicable) if rule[2] == "project"]


async def test_a_broken_project_config_keeps_the_rules_of_its_last_good_content_and_says_so(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    good = await book.applicable(str(repo))
    assert good.problems == [] and book.problem(str(repo)) == ""

    write(repo, GRANTING.replace('deny = ["bash(curl *)"]', 'deny = ["bash(curl *)"'))
    broken = await book.applicable(str(repo))
    # The same rules as before, narrowing only (not trusted), and no blanket "ask":
    kept = [("bash(curl *)", "deny", "project"), ("bash(git push *)", "ask", "project")]
    assert project_rules(broken) == project_rules(good) == kept
    assert broken.problems == []
    assert list(broken.ignored) == list(good.ignored)
    problem = book.problem(str(repo))
    assert "not valid TOML" in problem and "last content that loaded" in problem
    assert await book.project_problem(str(repo)) == (str(repo / ".kfd" / "config.toml"), problem)
    listed = await book.listing(str(repo))
    assert listed.problems == [problem]
    # Said where the daemon is told a file was read anew, and never trusted as it is.
    loaded = book.loaded  # type: ignore[attr-defined]
    assert loaded[-1][1].problem and not loaded[-1][1].trusted and not loaded[-1][1].grants
    info = await book.trust_info(str(repo))
    with pytest.raises(TrustConflict, match="does not load"):
        await book.set_trust(str(repo), info.sha256)

    write(repo, '[permissions]\ndeny = ["bash(rm *)"]\n')  # fixed: its own rules, no note
    fixed = await book.applicable(str(repo))
    assert project_rules(fixed) == [("bash(rm *)", "deny", "project")]
    assert book.problem(str(repo)) == "" and fixed.problems == []
    assert (await book.project_problem(str(repo)))[1] == ""


async def test_a_project_config_broken_since_the_daemon_started_makes_every_call_ask(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, "[permissions\n")
    applicable = await book.applicable(str(repo))
    assert project_rules(applicable) == []
    (problem,) = applicable.problems
    assert "every call asks until it is fixed" in problem
    assert book.problem(str(repo)) == problem


async def test_a_deleted_project_config_forgets_its_rules_so_a_broken_one_after_it_asks(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    await book.applicable(str(repo))
    (repo / ".kfd" / "config.toml").unlink()
    assert (await book.applicable(str(repo))).problems == []
    write(repo, "[permissions\n")
    assert (await book.applicable(str(repo))).problems != []


async def test_the_last_good_rules_of_a_trusted_file_stay_trusted_only_while_that_content_is(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    info = await book.trust_info(str(repo))
    await book.set_trust(str(repo), info.sha256, by="test")
    assert ("read(/**)", "allow", "project") in sources(await book.applicable(str(repo)))

    write(repo, GRANTING + "[permissions.oops\n")
    broken = await book.applicable(str(repo))
    # What applied goes on applying, nothing more; the broken content itself is not trusted.
    assert ("read(/**)", "allow", "project") in sources(broken)
    assert ("bash", "allow", "project") in sources(broken)
    assert broken.problems == []
    shown = await book.trust_info(str(repo))
    assert shown.problem and not shown.trusted and not shown.grants

    await book.revoke_trust(str(repo))  # revoked: the kept rules narrow at once
    revoked = await book.applicable(str(repo))
    assert [rule for rule in project_rules(revoked) if rule[1] == "allow"] == []
    assert ("bash(curl *)", "deny", "project") in sources(revoked)
    assert "allow bash: not until you trust this file" in revoked.ignored


async def test_the_last_good_rules_of_an_untrusted_file_only_narrow_while_it_is_broken(
    book: RuleBook, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    first = await book.trust_info(str(repo))
    await book.set_trust(str(repo), first.sha256, by="test")
    write(repo, GRANTING + "# changed: no longer the trusted content\n")
    await book.applicable(str(repo))
    write(repo, GRANTING + "[permissions.oops\n")
    broken = await book.applicable(str(repo))
    # The pin is of an older content: the kept (last good) content is untrusted.
    assert [rule for rule in project_rules(broken) if rule[1] == "allow"] == []
    assert ("bash(git push *)", "ask", "project") in sources(broken)


async def test_trusting_a_project_is_all_or_nothing(tmp_path: Path) -> None:
    """A command file that cannot be pinned (a link) stops the trust before the config
    or any other command is pinned: none of them applies."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, GRANTING)
    (repo / ".kfd" / "commands").mkdir()
    (repo / ".kfd" / "commands" / "a.md").write_text("---\nmode: auto\n---\nDo it\n")
    (tmp_path / "elsewhere.md").write_text("Outside\n")
    (repo / ".kfd" / "commands" / "b.md").symlink_to(tmp_path / "elsewhere.md")
    store = await Store.open(tmp_path / "kfd.db")
    trust = TrustStore(store)
    await trust.load()
    commands = CommandBook(tmp_path / "user-commands", trust.trusted)
    book = RuleBook(
        PermissionsConfig(),
        RuleStore(store),
        trust,
        commands=lambda project: [  # as the daemon wires it
            CommandPin(c.info.name, c.info.path, c.sha256) for c in commands.project_files(project)
        ],
    )
    try:
        info = await book.trust_info(str(repo))
        with pytest.raises(TrustConflict, match="cannot be trusted"):
            await book.set_trust(str(repo), info.sha256, by="test")
        assert trust.all() == []
        applicable = await book.applicable(str(repo))
        assert ("read(/**)", "allow", "project") not in sources(applicable)
    finally:
        await store.close()
