"""A command that may put a link where a later command's path leads makes that path
unknown (rounds 25 and 26): git writing the working tree from its objects, a patch
that adds a link, a copy or move of a link. Real repositories and real links; every
line below read a denied secret in auto mode, each command on its own would not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.rulebook import configured
from kfd.testing.decide import decide_line

RULES = [*configured(PermissionsConfig(deny=["read(secrets/**)"]), "user"), *builtin_rules()]
PATCH = """diff --git a/l b/l
new file mode 120000
--- /dev/null
+++ b/l
@@ -0,0 +1 @@
+secrets
\\ No newline at end of file
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "k").write_text("s\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "l").symlink_to("../secrets")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x\n")
    (tmp_path / "src" / "p.patch").write_text(PATCH)
    git("add", "src", "d")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    git("branch", "evil")
    return tmp_path


@pytest.mark.parametrize(
    "line",
    [
        "git checkout evil -- d; cat d/l/k",
        "git restore -s evil d && cat d/l/k",
        "git stash; cat l/k",
        "git apply src/p.patch; cat l/k",
        "patch -p1 < src/p.patch; cat l/k",
        "cp -P d/l src/l2; cat src/l2/k",
    ],
)
def test_a_path_after_a_command_that_may_put_a_link_there_asks(repo: Path, line: str) -> None:
    assert decide_line(repo, line, "auto", RULES) != "allow"
    assert decide_line(repo, line.split(";")[0].split("&&")[0], "auto", RULES) == "allow"


def test_commands_that_put_no_link_there_leave_paths_known(repo: Path) -> None:
    for line in ("mv src/a.py src/b.py && cat src/b.py", "git checkout -b topic && ls"):
        assert decide_line(repo, line, "auto", RULES) == "allow", line


def test_a_statement_met_again_or_in_a_loop_counts_every_time(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Round 26: a statement met again is listed once (its text, or its text but the
    files it writes), so facts that depend on the order of a line's commands must not
    take that list as the order: a `cd` may have run more times (``d/d`` is the
    secrets), a read may come after the command that puts a link, an archive may be
    unpacked again after it overwrote itself."""
    (repo / "d" / "d").symlink_to("../secrets")
    for line in (
        "cd d; cd d; cat k",
        "cd d >o1; cd d >o2; cat k",
        "for i in 1 2; do cd d; done; cat k",
        "cat d/x; git checkout evil -- d; cat d/x",
        "cat d/x 2>/dev/null; git checkout evil -- d; cat d/x",
    ):
        assert decide_line(repo, line, "auto", RULES) != "allow", line
    assert decide_line(repo, "cd src && cat a.py", "auto", RULES) == "allow"
    staged = tmp_path_factory.mktemp("stage")
    (staged / ".git" / "hooks").mkdir(parents=True)
    (staged / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\necho pwned\n")
    subprocess.run(["tar", "cf", str(repo / "a.tar"), "-C", str(staged), ".git"], check=True)
    subprocess.run(["tar", "cf", str(staged / "a.tar"), "-C", str(repo), "src"], check=True)
    subprocess.run(["tar", "cf", str(repo / "a.tar"), "-C", str(staged), "a.tar"], check=True)
    for line in ("tar xf a.tar; tar xf a.tar", "tar xf a.tar 2>/dev/null; tar xf a.tar"):
        assert decide_line(repo, line, "auto", RULES) != "allow", line
