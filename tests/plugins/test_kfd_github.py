"""github_read against a local server answering with GitHub's documented REST shapes."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sites import Page, Site, json_page, running_site

from kfd.agent.toolcall import CallContext
from kfd.api import ToolError, ToolResult
from kfd_github import GitHubReadTool

tool = GitHubReadTool()
REPO = "octo/widgets"


def user(login: str) -> dict[str, Any]:
    return {"login": login, "id": 1, "type": "User"}


def file_entry(path: str, text: bytes) -> dict[str, Any]:
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(text),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": "3d21ec53",
        "content": base64.encodebytes(text).decode(),
    }


ISSUE = {
    "number": 7,
    "title": "Widgets crash on start",
    "state": "open",
    "user": user("alice"),
    "labels": [{"name": "bug"}],
    "body": "Steps: run `widgets`.",
    "comments": 1,
    "created_at": "2026-01-02T03:04:05Z",
}
PULL = {
    "number": 8,
    "title": "Fix the crash",
    "state": "closed",
    "merged": True,
    "user": user("bob"),
    "body": "Fixes #7.",
    "head": {"label": "bob:fix"},
    "base": {"label": "octo:main"},
    "changed_files": 1,
    "additions": 2,
    "deletions": 1,
    "created_at": "2026-01-03T00:00:00Z",
    "labels": [],
}
DIFF = (
    "diff --git a/widgets.py b/widgets.py\n--- a/widgets.py\n+++ b/widgets.py\n"
    "@@ -1 +1 @@\n-crash()\n+run()\n"
)


def github_routes(site: Site) -> None:
    site.route(
        f"/repos/{REPO}/contents/src/app.py",
        lambda seen: json_page(
            file_entry(
                "src/app.py", b"print('at %s')\n" % seen.query.get("ref", ["main"])[0].encode()
            )
        ),
    )
    site.route(
        f"/repos/{REPO}/contents/src",
        json_page(
            [
                {"type": "file", "name": "app.py", "path": "src/app.py", "size": 20},
                {"type": "dir", "name": "lib", "path": "src/lib", "size": 0},
            ]
        ),
    )
    site.route(f"/repos/{REPO}/issues/7", json_page(ISSUE))
    site.route(
        f"/repos/{REPO}/issues/7/comments",
        json_page(
            [{"user": user("carol"), "body": "Same here.", "created_at": "2026-01-02T05:00:00Z"}]
        ),
    )
    site.route(
        f"/repos/{REPO}/pulls/8",
        lambda seen: (
            Page(body=DIFF, content_type="text/x-diff")
            if seen.headers.get("accept") == "application/vnd.github.diff"
            else json_page(PULL)
        ),
    )
    site.route(f"/repos/{REPO}/issues/8/comments", json_page([]))
    site.route(
        f"/repos/{REPO}/pulls/8/comments",
        json_page([{"user": user("alice"), "body": "Nice.", "path": "widgets.py", "line": 1}]),
    )
    site.route(
        "/search/code",
        lambda seen: json_page(
            {
                "total_count": 1,
                "incomplete_results": False,
                "items": [
                    {
                        "name": "app.py",
                        "path": "src/app.py",
                        "html_url": "https://gh.example/x",
                        "repository": {"full_name": REPO},
                    }
                ],
            }
        ),
    )
    site.route(
        f"/repos/{REPO}/releases",
        json_page(
            [
                {
                    "tag_name": "v1.2.0",
                    "name": "Spring",
                    "prerelease": False,
                    "draft": False,
                    "published_at": "2026-03-01T00:00:00Z",
                    "body": "- faster widgets",
                }
            ]
        ),
    )


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Site]:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("GH_CONFIG_DIR", str(tmp_path / "gh"))  # no gh login unless a test adds one
    with running_site() as site:
        github_routes(site)
        yield site


async def read(site: Site, **kwargs: Any) -> ToolResult:
    ctx = CallContext(session_id="s", workspace=Path("/"), config={"api_url": site.url})
    return await tool.run(GitHubReadTool.Args(**kwargs), ctx)


async def test_a_file_at_a_ref_and_a_directory_listing(site: Site) -> None:
    result = await read(site, action="file", repo=REPO, path="src/app.py", ref="v1.2.0")
    assert result.untrusted
    assert result.output == f"{REPO}@v1.2.0:src/app.py\n\nprint('at v1.2.0')\n"
    listing = (await read(site, action="file", repo=REPO, path="src")).output
    assert listing.splitlines() == [f"{REPO}:/src (2 entries)", "  lib/", "  app.py  20 B"]
    seen = site.requests[0]
    assert seen.headers["accept"] == "application/vnd.github+json"
    assert "authorization" not in seen.headers  # no token: public access


async def test_an_issue_comes_with_its_comments(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_env_token")
    text = (await read(site, action="issue", repo=REPO, number=7)).output
    assert text.startswith(f"{REPO}#7 (issue, open): Widgets crash on start\nby alice")
    assert "labels: bug" in text and "Steps: run `widgets`." in text
    assert "--- comment by carol at 2026-01-02T05:00:00Z ---\nSame here." in text
    assert {s.headers["authorization"] for s in site.requests} == {"Bearer ghp_env_token"}


async def test_a_pull_request_with_review_comments_and_its_diff(site: Site) -> None:
    text = (await read(site, action="pull", repo=REPO, number=8)).output
    assert "bob:fix → octo:main, merged; 1 files changed (+2 −1)" in text
    assert "--- review comment by alice on widgets.py:1 ---\nNice." in text
    diff = (await read(site, action="diff", repo=REPO, number=8)).output
    assert diff == f"diff of {REPO}#8\n\n{DIFF}"


async def test_code_search_and_releases(site: Site) -> None:
    found = (await read(site, action="search_code", repo=REPO, query="crash")).output
    assert found.splitlines()[1] == f"  {REPO}:src/app.py  https://gh.example/x"
    assert site.requests[-1].query["q"] == [f"crash repo:{REPO}"]
    notes = (await read(site, action="releases", repo=REPO)).output
    assert notes.startswith("## v1.2.0: Spring\npublished 2026-03-01T00:00:00Z\n\n- faster widgets")


async def test_the_rate_limit_is_reported_with_its_reset_time(site: Site) -> None:
    reset = int(time.time()) + 600
    site.route(
        f"/repos/{REPO}/issues/7",
        json_page(
            {
                "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: ...)",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
            403,
            **{
                "X-RateLimit-Limit": "60",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Resource": "core",
            },
        ),
    )
    stamp = time.strftime("%H:%M:%S UTC", time.gmtime(reset))
    with pytest.raises(ToolError) as limited:
        await read(site, action="issue", repo=REPO, number=7)
    message = str(limited.value)
    assert message.startswith("GitHub rate limit reached (60 requests per hour): API rate limit")
    assert (
        f"it resets at {stamp} (in 9 min" in message
        or f"it resets at {stamp} (in 10 min" in message
    )
    assert "set GITHUB_TOKEN" in message

    site.route(
        "/search/code",
        json_page(
            {"message": "You have exceeded a secondary rate limit."}, 429, **{"Retry-After": "30"}
        ),
    )
    with pytest.raises(ToolError, match=r"secondary rate limit.*retry after 30 s"):
        await read(site, action="search_code", query="x")


async def test_missing_things_and_bad_arguments_are_explained(site: Site) -> None:
    with pytest.raises(ToolError, match=r"not found \(404\).*needs GITHUB_TOKEN"):
        await read(site, action="file", repo="octo/private", path="x")
    for repo in ("../../etc", "octo", "a/b/c", "octo/wid gets"):
        with pytest.raises(ToolError, match="repo must be owner/name"):
            await read(site, action="releases", repo=repo)
    with pytest.raises(ToolError, match="needs the issue or pull request number"):
        await read(site, action="diff", repo=REPO)
    with pytest.raises(ToolError, match="needs a query"):
        await read(site, action="search_code", query="  ")
    ctx = CallContext(session_id="s", workspace=Path("/"), config={"api_url": 5})
    with pytest.raises(ToolError, match=r"\[tools.github_read\]"):
        await tool.run(GitHubReadTool.Args(action="releases", repo=REPO), ctx)
    site.route(f"/repos/{REPO}/releases", Page(body="<html>", content_type="text/html"))
    with pytest.raises(ToolError, match="not JSON"):
        await read(site, action="releases", repo=REPO)


async def test_a_path_or_ref_never_leaves_the_repository_the_call_names(site: Site) -> None:
    # The decision saw only repo=octo/widgets: dot segments would reach another
    # repository (the URL is resolved before the request is sent).
    site.route(
        "/repos/victim/private/contents/secrets.txt",
        json_page(file_entry("secrets.txt", b"CANARY-gh-private\n")),
    )
    escapes = [
        {"path": "../../../victim/private/contents/secrets.txt"},
        {"path": "src/../../../../victim/private/contents/secrets.txt"},
        {"path": "%2e%2e/%2e%2e/%2e%2e/victim/private/contents/secrets.txt"},
        {"path": "%252e%252e/%252E%252E/x"},
        {"path": "..\\..\\..\\victim\\private\\contents\\secrets.txt"},
        {"path": "./src/app.py"},
        {"path": "src/app.py", "ref": "../../victim"},
    ]
    for arguments in escapes:
        with pytest.raises(ToolError, match=r"must not contain '\.' or '\.\.' segments"):
            await read(site, action="file", repo=REPO, **arguments)
    for repo in ("../..", "octo/..", "./widgets"):
        with pytest.raises(ToolError, match="repo must be owner/name"):
            await read(site, action="file", repo=repo, path="victim/private/contents/secrets.txt")
    assert site.requests == []  # refused before any request
    # Names with dots in them are names.
    site.route(
        f"/repos/{REPO}/contents/docs/..hidden/v1.2.txt",
        json_page(file_entry("docs/..hidden/v1.2.txt", b"ok\n")),
    )
    found = await read(site, action="file", repo=REPO, path="docs/..hidden/v1.2.txt")
    assert found.output.endswith("\n\nok\n")


@pytest.mark.skipif(shutil.which("gh") is None, reason="the gh CLI is not installed")
async def test_the_gh_cli_login_supplies_the_token(site: Site, tmp_path: Path) -> None:
    config = tmp_path / "gh"
    config.mkdir()
    (config / "hosts.yml").write_text(
        "127.0.0.1:\n    oauth_token: gho_from_gh_cli\n    user: kfd\n    git_protocol: https\n"
    )
    await read(site, action="releases", repo=REPO)
    assert site.requests[-1].headers["authorization"] == "Bearer gho_from_gh_cli"


def test_session_rules_name_the_repository() -> None:
    assert tool.session_rule(GitHubReadTool.Args(action="issue", repo=REPO, number=1)) == (
        f"github_read(repo:{REPO})"
    )
    assert tool.summary(GitHubReadTool.Args(action="issue", repo=REPO, number=1)) == (
        f"issue {REPO} #1"
    )
