"""A path rule holds where the place it names really is (round 23).

With a home reached through a link (``/home`` -> ``/var/home`` on Fedora Silverblue
and CoreOS), ``read(~/.aws/**)`` was matched against ``$HOME`` as spelled while
every path is weighed where it really is: ``/var/home/u/.aws/credentials`` met no
rule, and the read and grep tools gave it to the model. Real directories and links
here, no stand-ins.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kfd.policy.defaults import builtin_rules
from kfd.policy.read_guard import ReadGuard
from kfd.policy.rules import (
    RuleError,
    SourcedRule,
    could_match_under,
    parse_rule,
    spec_matcher,
)


def rules(*texts: str, decision: str = "deny") -> list[SourcedRule]:
    return [SourcedRule(parse_rule(text), decision, "user") for text in texts]  # type: ignore[arg-type]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """``home`` a link to ``var_home/u`` (holding the secrets), ``srv`` a link to
    ``data/srv``, and a workspace whose ``keys`` is a link to ``elsewhere``."""
    real_home = tmp_path / "var_home" / "u"
    (real_home / ".aws").mkdir(parents=True)
    (real_home / ".aws" / "credentials").write_text("[default]\nkey = x\n")
    (tmp_path / "home").symlink_to(real_home)
    (tmp_path / "data" / "srv" / "keys").mkdir(parents=True)
    (tmp_path / "srv").symlink_to(tmp_path / "data" / "srv")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (workspace / "keys").symlink_to(tmp_path / "elsewhere")
    return {"home": tmp_path / "home", "real_home": real_home, "ws": workspace, "root": tmp_path}


def test_home_rules_hold_where_the_home_really_is_however_home_is_spelled(
    places: dict[str, Path],
) -> None:
    real = str(places["real_home"] / ".aws" / "credentials")
    spelled = str(places["home"] / ".aws" / "credentials")
    home = str(places["home"])
    for spelling in (
        home,
        home + "/",
        home.replace("/home", "//home"),
        home + "/.",
        home + "/x/..",
    ):
        guard = ReadGuard(builtin_rules(), str(places["ws"]), spelling)
        assert guard(real) is not None, spelling
        assert guard(spelled) is not None, spelling
    user = ReadGuard(rules("read(~/notes/**)"), str(places["ws"]), home)
    assert user(str(places["real_home"] / "notes" / "a")) == "read(~/notes/**)"


def test_a_restricting_rule_holds_where_its_directories_really_are(
    places: dict[str, Path],
) -> None:
    root, workspace = places["root"], str(places["ws"])
    home = str(places["home"])
    absolute = ReadGuard(rules(f"read({root}/srv/keys/**)"), workspace, home)
    assert absolute(str(root / "data" / "srv" / "keys" / "k")) is not None
    assert absolute(str(root / "srv" / "keys" / "k")) is not None
    relative = ReadGuard(rules("read(keys/**)"), workspace, home)
    assert relative(str(root / "elsewhere" / "k")) is not None
    assert relative(str(root / "ws" / "keys" / "k")) is not None
    assert could_match_under(f"{root}/srv/keys/**", str(root / "data" / "srv"), workspace, home)
    # A directory named with glob characters is matched as its name, nothing wider.
    (root / "data" / "a*").mkdir()
    (root / "starred").symlink_to(root / "data" / "a*")
    starred = spec_matcher(f"{root}/starred/x", workspace, home, restricting=True)
    assert starred(str(root / "data" / "a*" / "x"))
    assert not starred(str(root / "data" / "ab" / "x"))


def test_an_allow_rule_holds_only_where_it_says(places: dict[str, Path]) -> None:
    """A link in an allow rule's directories (the workspace's ``keys`` here, which a
    hostile model could make) never takes the rule where the link leads."""
    root, workspace, home = places["root"], str(places["ws"]), str(places["home"])
    allow = spec_matcher("keys/**", workspace, home)
    assert allow(os.path.join(workspace, "keys", "k"))
    assert not allow(str(root / "elsewhere" / "k"))
    assert not spec_matcher(f"{root}/srv/**", workspace, home)(str(root / "data" / "srv" / "x"))
    assert spec_matcher("~/notes/**", workspace, home)(str(places["real_home"] / "notes" / "x"))


def test_a_restricting_rule_holds_through_every_literal_name_and_any_spelling(
    places: dict[str, Path],
) -> None:
    """Round 24: a dotfile manager's links below the home (``~/.aws`` -> ``dotfiles/aws``),
    a rule's last name a link (``keys``, ``prod.json``), a trailing slash, and
    spellings other tools use (``./x``, ``a//b``, ``a/./b``, ``x/../y``) all missed."""
    root, workspace, home = places["root"], places["ws"], str(places["home"])
    real_home = places["real_home"]
    (real_home / "dotfiles" / "aws").mkdir(parents=True)
    (real_home / "dotfiles" / "aws" / "credentials").write_text("k")
    (real_home / ".aws" / "credentials").unlink()
    (real_home / ".aws").rmdir()
    (real_home / ".aws").symlink_to("dotfiles/aws")
    guard = ReadGuard(builtin_rules(), str(real_home), home)
    assert guard(str(real_home / "dotfiles" / "aws" / "credentials")) == "read(~/.aws/**)"
    (root / "vault").mkdir()
    (root / "prod.real.json").write_text("{}")
    (workspace / "prod.json").symlink_to(root / "prod.real.json")
    for spec in ("keys/", "keys", "./keys/**", "keys//**", "./x/../keys/**", "keys/./**"):
        named = ReadGuard(rules(f"read({spec})"), str(workspace), home)
        assert named(str(root / "elsewhere" / "k")) is not None, spec
        assert named(str(workspace / "keys" / "k")) is not None, spec
    file_rule = ReadGuard(rules("read(prod.json)"), str(workspace), home)
    assert file_rule(str(root / "prod.real.json")) is not None
    up = ReadGuard(rules("read(../vault/**)"), str(workspace), home)
    assert up(str(root / "vault" / "x")) is not None
    assert ReadGuard(rules("read(~/./.aws/**)"), str(workspace), home)(
        str(real_home / "dotfiles" / "aws" / "credentials")
    )
    assert spec_matcher(f"{root}/srv/./keys/**", str(workspace), home)(f"{root}/srv/keys/k")


def test_rules_that_name_nothing_or_cost_much_are_refused_or_bounded(tmp_path: Path) -> None:
    """A NUL in a rule is a config error (it broke every turn of the workspace); a
    chain of links past the kernel's limit at a rule's head leaves the rule as
    spelled (nothing reaches through it) instead of raising."""
    with pytest.raises(RuleError, match="NUL"):
        parse_rule("read(/tmp/a\0b/**)")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "l0").symlink_to("l1")
    for index in range(1, 60):
        (workspace / f"l{index}").symlink_to(f"l{index + 1}")
    (workspace / "keys").symlink_to("l0")
    guard = ReadGuard(rules("read(keys/**)"), str(workspace), str(tmp_path))
    assert guard(str(workspace / "keys" / "x")) == "read(keys/**)"
