"""Undo on the bus: checkpoint.list, checkpoint.diff, checkpoint.undo.

An undo never overwrites a file changed since the turn without being told
to: asked with ``on_conflict = "ask"``, it applies nothing and returns the
conflicts with a fingerprint of the files as shown; the frontend asks the
user and sends the answer with that fingerprint, which must still match.
A rewind of the conversation forks the session from before the turn (the
original is kept as it is). Every frontend sees a ``checkpoint.restored``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from kfd.checkpoints.service import Checkpoints, UndoConflict, Undone
from kfd.errors import RequestError
from kfd.protocol import (
    ChangedFile,
    CheckpointDiff,
    CheckpointList,
    CheckpointListResult,
    CheckpointRestored,
    CheckpointUndo,
    DiffResult,
    FrontendRef,
    SessionInfo,
    TurnCheckpoint,
    UndoResult,
    UndoStep,
)

if TYPE_CHECKING:
    from kfd.agent.session import Session
    from kfd.daemon.sessions import SessionManager

log = logging.getLogger(__name__)

CheckpointRequest = CheckpointList | CheckpointDiff | CheckpointUndo

PROMPT_CHARS = 120


async def answer(
    sessions: SessionManager, request: CheckpointRequest, by: FrontendRef
) -> CheckpointListResult | DiffResult | UndoResult:
    """The result of one checkpoint request."""
    checkpoints = sessions.runtime.checkpoints
    if checkpoints is None:
        raise RequestError("conflict", "checkpoints are not set up yet; try again")
    session = await sessions.get(request.session)
    match request:
        case CheckpointList():
            return await _listing(checkpoints, session)
        case CheckpointDiff():
            turns, root, text, rows = await checkpoints.diff(session.id, request.turn)
            if request.turn is not None and not turns:
                raise RequestError(
                    "not_found", f"turn {request.turn} of session {session.id} changed no file"
                )
            files = _files(rows, turns)
            return DiffResult(session=session.id, turns=turns, files=files, diff=text, root=root)
        case CheckpointUndo():
            return await _undo(sessions, checkpoints, session, request, by)


async def _listing(checkpoints: Checkpoints, session: Session) -> CheckpointListResult:
    prompts = await _prompts(session)
    listed = await checkpoints.turns(session.id)
    return CheckpointListResult(
        session=session.id,
        root=listed[-1][0].root if listed else "",
        turns=[
            TurnCheckpoint(
                turn=turn.turn,
                started_at=turn.started_at,
                files=[ChangedFile(path=p, change=how) for p, how in files],  # type: ignore[arg-type]
                undone=turn.undone_at is not None,
                prompt=prompts.get(turn.turn, ""),
            )
            for turn, files in listed
        ],
    )


def _files(rows: Any, turns: list[int]) -> list[ChangedFile]:
    from kfd.checkpoints.plan import changed_files

    return [
        ChangedFile(path=p, change=how)  # type: ignore[arg-type]
        for p, how in changed_files(r for r in rows if r.turn in turns)
    ]


class _Started(msgspec.Struct):
    type: str
    turn: int = 0
    message_ids: list[str] = msgspec.field(default_factory=list)
    message_id: str = ""
    text: str = ""


_started = msgspec.json.Decoder(_Started)


async def _turn_messages(session: Session) -> tuple[dict[int, list[str]], dict[str, str]]:
    """The user messages that started each turn, and the text of each."""
    rows = await session.runtime.store.event_types(session.id, ("turn.started", "message.user"))
    turns: dict[int, list[str]] = {}
    texts: dict[str, str] = {}
    for _, body in rows:
        event = _started.decode(body)
        if event.type == "turn.started":
            turns[event.turn] = event.message_ids
        else:
            texts[event.message_id] = event.text
    return turns, texts


async def _prompts(session: Session) -> dict[int, str]:
    turns, texts = await _turn_messages(session)
    found = {}
    for turn, ids in turns.items():
        text = next((texts[i] for i in ids if i in texts), "")
        first = text.strip().splitlines()[:1]
        found[turn] = first[0][:PROMPT_CHARS] if first else ""
    return found


async def _undo(
    sessions: SessionManager,
    checkpoints: Checkpoints,
    session: Session,
    request: CheckpointUndo,
    by: FrontendRef,
) -> UndoResult:
    if not request.files and not request.conversation:
        raise RequestError("bad_request", "undo what? set files, conversation, or both")
    if session.busy and (request.files or not request.dry_run):
        raise RequestError(
            "conflict", f"session {session.id} is running a turn; cancel it (or wait) first"
        )
    done = Undone([], [], "", applied=True)
    if request.files:
        try:
            done = await checkpoints.undo(
                session.id,
                request.turn,
                request.on_conflict,
                request.expect,
                dry_run=request.dry_run,
            )
        except UndoConflict as exc:
            raise RequestError("conflict", str(exc)) from None
        if not done.turns and not request.conversation:
            raise RequestError("not_found", done.message or "nothing to undo")
    result = UndoResult(
        session=session.id,
        turns=done.turns,
        applied=done.applied and not request.dry_run,
        steps=[_step(o) for o in done.outcomes],
        fingerprint=done.fingerprint,
        message=done.message,
        root=done.root,
    )
    if not result.applied and request.files:
        return result
    forked: SessionInfo | None = None
    if request.conversation:
        turn = request.turn or (done.turns[0] if done.turns else session.info.turns)
        if request.dry_run:
            return result
        forked = await _rewind(sessions, session, turn)
        result.forked = forked
    if request.files or forked is not None:
        written = [o.step.path for o in done.outcomes if o.action in _WRITTEN]
        kept = [o.step.path for o in done.outcomes if o.action == "kept"]
        session.emit(
            CheckpointRestored(
                session=session.id,
                turns=done.turns,
                files=written,
                kept=kept,
                forked=forked.id if forked is not None else "",
                by=by,
            )
        )
        log.info(
            "undid turns %s of %s (%d files) for %s", done.turns, session.id, len(written), by.name
        )
    return result


_WRITTEN = frozenset({"restore", "overwritten", "merged", "merge_conflict"})


def _step(outcome: Any) -> UndoStep:
    step = outcome.step
    return UndoStep(
        path=step.path,
        action=outcome.action,
        turns=list(step.turns),
        detail=outcome.detail,
        diff=outcome.diff,
    )


async def _rewind(sessions: SessionManager, session: Session, turn: int) -> SessionInfo:
    """A fork of ``session`` whose conversation stops just before turn ``turn``."""
    turns, _ = await _turn_messages(session)
    first = next(iter(turns.get(turn, [])), None)
    if first is None:
        raise RequestError("not_found", f"session {session.id} has no turn {turn}")
    title = f"{session.info.title or session.id} (before turn {turn})"
    forked = await sessions.fork(session, None, title, before_message=first)
    return forked.info
