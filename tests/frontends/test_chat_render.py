"""The chat bridge's pure parts: what a sync means, how text is quoted and shown."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from kfd import protocol as p
from kfd.client.exact import visible
from kfd_chat import matrix_sync, render
from kfd_chat.markup import matrix_html, slack_escape

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
