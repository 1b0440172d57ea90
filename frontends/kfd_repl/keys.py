"""The REPL's keys, on top of prompt-toolkit's Emacs-style editing keys.

The input line owns the keys unless the user gives them to an open approval,
so a draft can never answer one by accident, and nothing typed is lost:

- composing: Enter sends, Esc-Enter / Alt-Enter / Ctrl-J insert a newline,
  Ctrl-D on an empty input detaches, Esc cancels the running turn;
- an approval is open and the input is empty (and the question did not just
  pop up while the user was typing), or the user pressed Tab to move to it:
  y (or 1) allows once, a (2) allows for the session, A (4) allows always in
  this project (only when the approval has a rule to keep: else A and 4 are
  keys like any other), n (3) asks for an optional reason and denies; Tab or
  Esc goes back to the input; any other key goes to the input as typed (and
  the approval lets go of the keys: typing "Add a test" on the empty line
  when A is not an answer gives the line "Add a test");
- an approval is open and the input has a draft: every key edits the draft
  (Enter queues it as a message); Tab moves to the approval;
- giving a reason for a denial: Enter denies, Esc goes back to the question.

In every state Ctrl-C cancels the running turn and Shift-Tab cycles the mode;
the terminal's focus reports (`kfd_repl.focus`) are taken in every state too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prompt_toolkit.filters import Condition, has_completions, is_searching
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from kfd import protocol as p
from kfd_repl import focus
from kfd_repl.view import offers_always

if TYPE_CHECKING:
    from kfd_repl.app import Repl


def key_bindings(repl: Repl) -> KeyBindings:
    """The bindings of ``repl``, read at key time (the view changes underneath)."""
    bindings = KeyBindings()
    denying = Condition(lambda: repl.denying)
    answering = Condition(lambda: repl.approval_keys() in ("answer", "focused"))
    focused = Condition(lambda: repl.approval_keys() == "focused")
    draft_waits = Condition(lambda: repl.approval_keys() == "draft")
    always = answering & Condition(
        lambda: repl.view.approval is not None and offers_always(repl.view.approval)
    )
    composing = ~answering & ~denying
    empty = Condition(lambda: not repl.input.text)
    busy = Condition(lambda: repl.view.busy)
    selected = has_completions & Condition(
        lambda: (
            repl.input.complete_state is not None
            and repl.input.complete_state.current_completion is not None
        )
    )

    @bindings.add("enter", filter=composing & selected, eager=True)
    def _take_completion(event: KeyPressEvent) -> None:
        repl.input.complete_state = None  # the selected completion is already in the text

    @bindings.add("enter", filter=composing & ~selected, eager=True)
    def _submit(event: KeyPressEvent) -> None:
        repl.submit()

    @bindings.add("escape", "enter", filter=composing)
    @bindings.add("c-j", filter=composing)
    def _newline(event: KeyPressEvent) -> None:
        repl.input.insert_text("\n")

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        repl.interrupt()

    mine = ~denying & ~focused & ~is_searching  # Esc of a search leaves the search

    @bindings.add("escape", filter=mine & has_completions)
    def _close_menu(event: KeyPressEvent) -> None:
        repl.input.cancel_completion()

    @bindings.add("escape", filter=mine & ~has_completions & busy)
    def _cancel_turn(event: KeyPressEvent) -> None:
        repl.cancel_turn()

    @bindings.add("c-d", filter=composing & empty)
    def _detach(event: KeyPressEvent) -> None:
        repl.exit()

    @bindings.add("s-tab")
    def _cycle_mode(event: KeyPressEvent) -> None:
        repl.spawn(repl.set_mode())

    @bindings.add("tab", filter=draft_waits, eager=True)
    def _to_approval(event: KeyPressEvent) -> None:
        repl.focus_approval(True)

    @bindings.add("tab", filter=focused, eager=True)
    @bindings.add("escape", filter=focused, eager=True)
    def _to_input(event: KeyPressEvent) -> None:
        repl.focus_approval(False)

    @bindings.add("<any>", filter=answering)
    def _to_the_input(event: KeyPressEvent) -> None:
        """A key that does not answer goes to the input as typed: never lost."""
        if event.data.isprintable():
            repl.type_into_input(event.data)

    @bindings.add("enter", filter=answering)
    @bindings.add("c-j", filter=answering)
    def _ignore(event: KeyPressEvent) -> None:
        """Enter neither answers nor sends an empty line while a question is open."""

    def answer_with(decision: p.ApprovalDecision) -> Callable[[KeyPressEvent], None]:
        def answer(event: KeyPressEvent) -> None:
            repl.answer(decision)

        return answer

    answers: dict[str, p.ApprovalDecision] = {
        "y": "allow",
        "1": "allow",
        "a": "allow_session",
        "2": "allow_session",
    }
    for key, decision in answers.items():
        bindings.add(key, filter=answering)(answer_with(decision))
    for key in ("A", "4"):
        bindings.add(key, filter=always)(answer_with("allow_always"))

    @bindings.add("n", filter=answering)
    @bindings.add("3", filter=answering)
    def _deny(event: KeyPressEvent) -> None:
        repl.start_deny()

    @bindings.add(focus.FOCUS_IN)
    def _focused(event: KeyPressEvent) -> None:
        repl.set_focus(True)

    @bindings.add(focus.FOCUS_OUT)
    def _unfocused(event: KeyPressEvent) -> None:
        repl.set_focus(False)

    @bindings.add("enter", filter=denying, eager=True)
    def _deny_with_reason(event: KeyPressEvent) -> None:
        repl.finish_deny()

    @bindings.add("escape", filter=denying, eager=True)
    def _back_to_question(event: KeyPressEvent) -> None:
        repl.end_deny()

    return bindings
