"""What a ``git push`` means once its configuration is counted (`kfd.policy.gitpush`)."""

from __future__ import annotations

from kfd.policy.gitpush import Configured, configured_options, entry_of
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
