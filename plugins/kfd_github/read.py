"""The ``github_read`` tool: files, issues, pull requests, diffs, code search, releases."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit

import httpx
import msgspec

from kfd.api import Tool, ToolContext, ToolError, ToolResult

from .api import GitHub
from .token import find_token

Action = Literal["file", "issue", "pull", "diff", "search_code", "releases"]

REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
PER_PAGE = 30
MAX_BODY_CHARS = 8_000


class GitHubSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.github_read]``."""

    api_url: str = "https://api.github.com"
    """The REST API base; GitHub Enterprise: ``https://HOST/api/v3``."""
    timeout_s: float = 20.0


class GitHubArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of github_read."""

    action: Action
    repo: Annotated[str, msgspec.Meta(max_length=201, description="owner/name")] = ""
    path: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    ref: Annotated[str, msgspec.Meta(max_length=250)] = ""
    number: Annotated[int, msgspec.Meta(ge=0)] = 0
    query: Annotated[str, msgspec.Meta(max_length=256)] = ""
    page: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class GitHubReadTool(Tool[GitHubArgs]):
    """Read-only GitHub REST access."""

    name = "github_read"
    description = (
        "Read GitHub: file (path at ref: branch, tag or commit; a directory is listed), "
        "issue or pull (by number, with comments), diff (of a pull), search_code (query), "
        "releases."
    )
    Args = GitHubArgs
    schema_budget = 600
    read_only = True
    network = True

    def summary(self, args: GitHubArgs) -> str:
        target = args.path or (f"#{args.number}" if args.number else args.query)
        return " ".join(part for part in (args.action, args.repo, target) if part)

    def session_rule(self, args: GitHubArgs) -> str:
        """``github_read(repo:<owner/name>)`` (code search: ``github_read(search)``)."""
        return f"github_read(repo:{args.repo})" if args.repo else "github_read(search)"

    def domains(self, args: GitHubArgs, config: Mapping[str, Any]) -> list[str] | None:
        """The API's host (``api.github.com``, or GitHub Enterprise's)."""
        try:
            api_url = msgspec.convert(dict(config), GitHubSettings).api_url
        except msgspec.ValidationError:
            return None
        host = urlsplit(api_url).hostname
        return [host.lower()] if host else None

    async def run(self, args: GitHubArgs, ctx: ToolContext) -> ToolResult:
        try:
            config = msgspec.convert(dict(ctx.config), GitHubSettings)
        except msgspec.ValidationError as exc:
            raise ToolError(f"[tools.github_read] in the kfd config: {exc}; fix it") from None
        _check(args)
        token = await _token(config.api_url, ctx)
        async with httpx.AsyncClient(timeout=config.timeout_s, trust_env=False) as client:
            github = GitHub(client, config.api_url, token)
            output = await ACTIONS[args.action](github, args)
        return ToolResult(output=output, untrusted=True)


def _check(args: GitHubArgs) -> None:
    if args.action != "search_code" and not REPO.match(args.repo):
        raise ToolError(f"repo must be owner/name (got {args.repo!r})")
    if args.repo and (not REPO.match(args.repo) or _dot_segment(args.repo)):
        raise ToolError(f"repo must be owner/name (got {args.repo!r})")
    _check_plain(args.path, "path")
    _check_plain(args.ref, "ref")
    if args.action in ("issue", "pull", "diff") and args.number < 1:
        raise ToolError(f"action={args.action} needs the issue or pull request number")
    if args.action == "search_code" and not args.query.strip():
        raise ToolError("action=search_code needs a query")


def _check_plain(value: str, what: str) -> None:
    """Refuse a path or ref that could leave the repository the call was allowed
    for: ``..`` or ``.`` as a segment (also percent-encoded), or a backslash.
    A URL's dot segments are resolved before the request (``/repos/a/b/contents/
    ../../../c/d`` is ``/repos/c/d``), and the decision saw only the repo."""
    if "\\" in unquote(value) or _dot_segment(value):
        raise ToolError(
            f"{what} must not contain '.' or '..' segments or backslashes (got {value!r}); "
            f"give the {what} inside the repository as it is, e.g. docs/index.md"
        )


def _dot_segment(value: str) -> bool:
    """Whether ``value`` has a ``.`` or ``..`` segment, as written or decoded."""
    seen = value
    for _ in range(4):  # %252e%252e is %2e%2e once decoded, .. twice
        if any(segment in (".", "..") for segment in re.split(r"[/\\]", seen)):
            return True
        decoded = unquote(seen)
        if decoded == seen:
            return False
        seen = decoded
    return True  # encoded more deeply than any real name is


async def _token(api_url: str, ctx: ToolContext) -> str | None:
    host = urlsplit(api_url).hostname or "github.com"
    host = "github.com" if host == "api.github.com" else host
    cache: dict[str, str | None] = ctx.state.setdefault("github_tokens", {})
    if host not in cache:
        cache[host] = await find_token(host)
    return cache[host]


async def read_file(github: GitHub, args: GitHubArgs) -> str:
    _check_plain(args.path, "path")
    _check_plain(args.ref, "ref")
    path = quote(args.path.strip("/"))
    params = {"ref": args.ref} if args.ref else {}
    data = await github.json(f"/repos/{args.repo}/contents/{path}", **params)
    at = f"@{args.ref}" if args.ref else ""
    if isinstance(data, list):
        lines = [f"{args.repo}{at}:/{args.path.strip('/')} ({len(data)} entries)"]
        for entry in sorted(data, key=lambda e: (e.get("type") != "dir", e.get("name", ""))):
            suffix = "/" if entry.get("type") == "dir" else ""
            size = f"  {entry.get('size', 0):,} B" if entry.get("type") == "file" else ""
            lines.append(f"  {entry.get('name', '?')}{suffix}{size}")
        return "\n".join(lines)
    if not isinstance(data, dict) or data.get("type") != "file":
        kind = data.get("type") if isinstance(data, dict) else "unknown"
        raise ToolError(f"{args.path} is a {kind}, not a file or directory")
    if data.get("encoding") == "base64" and data.get("content") is not None:
        try:
            raw = base64.b64decode(data["content"])
        except (binascii.Error, ValueError):
            raise ToolError(f"GitHub sent {args.path} in a form that does not decode") from None
    else:  # files over 1 MB come without content: ask for the raw bytes
        response = await github.get(
            f"/repos/{args.repo}/contents/{path}",
            params=params or None,
            accept="application/vnd.github.raw",
        )
        raw = response.content
    if b"\x00" in raw[:4096]:
        return f"{args.repo}{at}:{data.get('path')} is binary ({len(raw):,} bytes)"
    return f"{args.repo}{at}:{data.get('path')}\n\n{raw.decode(errors='replace')}"


async def read_issue(github: GitHub, args: GitHubArgs) -> str:
    issue = await github.json(f"/repos/{args.repo}/issues/{args.number}")
    comments = await github.json(
        f"/repos/{args.repo}/issues/{args.number}/comments", per_page=PER_PAGE, page=args.page
    )
    kind = "pull request" if "pull_request" in issue else "issue"
    return _thread(args, issue, kind, [], comments)


async def read_pull(github: GitHub, args: GitHubArgs) -> str:
    pull = await github.json(f"/repos/{args.repo}/pulls/{args.number}")
    comments = await github.json(
        f"/repos/{args.repo}/issues/{args.number}/comments", per_page=PER_PAGE, page=args.page
    )
    reviews = await github.json(
        f"/repos/{args.repo}/pulls/{args.number}/comments", per_page=PER_PAGE, page=args.page
    )
    head = (pull.get("head") or {}).get("label", "?")
    base = (pull.get("base") or {}).get("label", "?")
    state = "merged" if pull.get("merged") else pull.get("state", "?")
    facts = [
        f"{head} → {base}, {state}; {pull.get('changed_files', '?')} files changed "
        f"(+{pull.get('additions', '?')} −{pull.get('deletions', '?')})"
    ]
    review_lines = [
        f"--- review comment by {_user(c)} on {c.get('path')}:{c.get('line') or '?'} ---\n"
        f"{_cut(c.get('body'))}"
        for c in reviews
        if isinstance(c, dict)
    ]
    return _thread(args, pull, "pull request", facts, comments) + (
        "\n\n" + "\n\n".join(review_lines) if review_lines else ""
    )


async def read_diff(github: GitHub, args: GitHubArgs) -> str:
    response = await github.get(
        f"/repos/{args.repo}/pulls/{args.number}", accept="application/vnd.github.diff"
    )
    return f"diff of {args.repo}#{args.number}\n\n{response.text}"


async def search_code(github: GitHub, args: GitHubArgs) -> str:
    query = args.query.strip() + (f" repo:{args.repo}" if args.repo else "")
    data = await github.json("/search/code", q=query, per_page=PER_PAGE, page=args.page)
    items = data.get("items") or []
    lines = [f"{data.get('total_count', len(items))} results for {query!r} (page {args.page})"]
    for item in items:
        repo = (item.get("repository") or {}).get("full_name", "?")
        lines.append(f"  {repo}:{item.get('path', '?')}  {item.get('html_url', '')}")
    return "\n".join(lines)


async def releases(github: GitHub, args: GitHubArgs) -> str:
    data = await github.json(f"/repos/{args.repo}/releases", per_page=10, page=args.page)
    if not data:
        return f"{args.repo} has no releases"
    parts = []
    for release in data:
        flags = " (pre-release)" if release.get("prerelease") else ""
        flags += " (draft)" if release.get("draft") else ""
        parts.append(
            f"## {release.get('tag_name', '?')}: {release.get('name') or ''}{flags}\n"
            f"published {release.get('published_at') or 'never'}\n\n"
            f"{_cut(release.get('body'), 2000)}"
        )
    return "\n\n".join(parts)


def _thread(
    args: GitHubArgs, item: dict[str, Any], kind: str, facts: list[str], comments: Any
) -> str:
    labels = ", ".join(label.get("name", "?") for label in item.get("labels") or [])
    lines = [
        f"{args.repo}#{args.number} ({kind}, {item.get('state', '?')}): {item.get('title', '')}",
        f"by {_user(item)} at {item.get('created_at', '?')}"
        + (f"; labels: {labels}" if labels else ""),
        *facts,
        "",
        _cut(item.get("body")) or "(no description)",
    ]
    for comment in comments if isinstance(comments, list) else []:
        lines += ["", f"--- comment by {_user(comment)} at {comment.get('created_at', '?')} ---"]
        lines.append(_cut(comment.get("body")))
    total = item.get("comments")
    if isinstance(total, int) and total > args.page * PER_PAGE:
        lines.append(f"\n[{total - args.page * PER_PAGE} more comments: page={args.page + 1}]")
    return "\n".join(lines)


def _user(item: dict[str, Any]) -> str:
    return str((item.get("user") or {}).get("login", "?"))


def _cut(text: Any, limit: int = MAX_BODY_CHARS) -> str:
    body = str(text or "").strip()
    return body if len(body) <= limit else body[:limit] + f"\n[… {len(body) - limit} more chars]"


ACTIONS = {
    "file": read_file,
    "issue": read_issue,
    "pull": read_pull,
    "diff": read_diff,
    "search_code": search_code,
    "releases": releases,
}
