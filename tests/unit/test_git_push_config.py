"""What a ``git push`` means once its configuration is counted (`kfd.policy.gitpush`)."""

from __future__ import annotations

from kfd.policy.gitpush import (
    Configured,
    configured_options,
    entry_of,
    legacy_remotes,
    remotes_file_refspecs,
)
from kfd.policy.programs.argv import parse_argv

_FORCED = [("remote.origin.push", "+refs/heads/*:refs/heads/*")]


def _configured(line: str, entries: list[tuple[str, str]] | None) -> Configured:
    parsed = parse_argv("git", tuple(line.split()), frozenset(), False)
    assert parsed is not None
    return configured_options(parsed, entries)


def test_configured_refspecs_stand_in_for_those_the_command_line_leaves_out() -> None:
    assert _configured("git push", _FORCED).options == {"force"}
    assert _configured("git push origin", _FORCED).options == {"force"}
    assert _configured("git push origin main", _FORCED) == Configured()
    assert _configured("git push --tags", _FORCED) == Configured()
    assert _configured("git push --all", _FORCED) == Configured()
    assert _configured("git push upstream", _FORCED) == Configured()
    deleting = [("remote.origin.push", "+:refs/heads/main")]
    assert _configured("git push", deleting).options == {"force", "delete"}


def test_a_mirror_remote_makes_every_push_to_it_a_mirror() -> None:
    mirror = [("remote.backup.mirror", "")]
    assert _configured("git push backup main", mirror).options == {"mirror"}
    assert _configured("git push --repo=backup", mirror).options == {"mirror"}
    assert _configured("git push backup", [*mirror, ("remote.backup.mirror", "no")]) == (
        Configured()
    )
    assert _configured("git push backup", [("remote.backup.mirror", "2")]).options == {"mirror"}


def test_a_push_naming_no_remote_is_certain_only_when_every_remote_it_may_use_agrees() -> None:
    entries = [*_FORCED, ("branch.topic.pushremote", "fork")]
    assert _configured("git push", entries) == Configured(maybe=frozenset({"force"}))
    default = [("remote.pushdefault", "backup"), ("remote.backup.mirror", "true")]
    assert _configured("git push", default).options == {"mirror"}


def test_configuration_kfd_cannot_read_may_give_any_option() -> None:
    assert _configured("git push origin main", None).maybe == {"force", "delete", "mirror"}


def test_a_command_line_setting_is_an_entry_as_git_spells_it() -> None:
    assert entry_of("Remote.Origin.Mirror") == ("remote.Origin.mirror", "")
    assert entry_of("remote.a.b.push=+x") == ("remote.a.b.push", "+x")
    assert entry_of("remote.pushDefault=o") == ("remote.pushdefault", "o")


def test_a_remotes_file_gives_push_refspecs_to_a_remote_the_configuration_gives_no_url() -> None:
    parsed = parse_argv("git", ("git", "push", "evil"), frozenset(), False)
    assert parsed is not None
    forced = {"evil": ("+refs/heads/master:refs/heads/master",)}
    assert configured_options(parsed, [], forced).options == {"force"}
    # Configured refspecs and the file's add up.
    assert configured_options(parsed, [("remote.evil.push", "x")], forced).options == {"force"}
    # A URL in the configuration: git reads no file for that remote.
    assert configured_options(parsed, [("remote.evil.url", "/r")], forced) == Configured()
    # A file kfd cannot read may give any refspec.
    assert configured_options(parsed, [], {"evil": None}).maybe == {"force", "delete"}
    assert legacy_remotes(parsed, []) == ["evil"]
    assert legacy_remotes(parsed, [("remote.evil.url", "/r")]) == []


def test_the_files_remotes_are_read_for_are_those_a_plain_push_may_go_to() -> None:
    parsed = parse_argv("git", ("git", "push"), frozenset(), False)
    assert parsed is not None
    assert legacy_remotes(parsed, [("branch.main.remote", "up")]) == ["origin", "up"]
    url = parse_argv("git", ("git", "push", "../x.git"), frozenset(), False)
    assert url is not None and legacy_remotes(url, []) == []


def test_a_remotes_file_is_read_as_git_reads_it() -> None:
    text = "URL: /tmp/r.git\nPull: refs/heads/a:refs/a\nPush:   +refs/heads/m:refs/heads/m \r\n"
    text += " Push: +ignored\npush: +ignored\nPush:\n"
    assert remotes_file_refspecs(text) == ("+refs/heads/m:refs/heads/m",)


def test_a_push_naming_no_remote_may_go_to_the_only_remote_whatever_its_name() -> None:
    """git takes the only remote configured when no branch names one (round 14: `up`,
    pushing `+` refspecs, force-pushed past a rule about --force)."""
    only = [("remote.up.url", "/r"), ("remote.up.push", "+refs/heads/*:refs/heads/*")]
    assert "force" in _configured("git push", only).maybe | _configured("git push", only).options
