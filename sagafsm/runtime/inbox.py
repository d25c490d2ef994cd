"""The inbox rules a participant host applies to one command, inside the transaction (or savepoint)
it is handled in; :mod:`.host` frames them with the store, the transport and the ledger.

The rules are the simulator's participant's (:mod:`sagafsm.sim.participant`), rule for rule, so
that the same checkers judge both:

- an action key with a recorded reply gets that reply again, and nothing runs;
- a tombstoned action key (its compensation came first) is ``action_blocked``, and answered
  "cancelled: its compensation came first";
- a compensation key already done is answered succeeded, and nothing runs;
- a compensation handed an action result other than the one this participant recorded is
  ``compensation_refused`` (checked first: undoing with a result it never gave out would undo
  something else);
- a compensation of an action that never succeeded here leaves a tombstone on the action key and
  is ``compensation_noop``; otherwise the compensation handler runs: ``compensation``.

A handler that raises anything but :class:`~sagafsm.runtime.participant.Refused`, returns what is
not a mapping of JSON data, or outlives ``handler_timeout``, is abandoned (:class:`Abandon`): its
writes roll back, nobody answers, and the orchestrator's timeout decides. A compensation that
raises is different: that is a failed try (:class:`TryFailed`), rolled back, then recorded and
answered, as the engine retries compensations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any, Final, NoReturn, TypeVar

from .._validate import is_json_value, plain_json
from ..history import LedgerEffect
from ..messages import Envelope, MessageKind, Outcome
from .participant import Participant, Refused, action_call, compensation_call
from .store import InboxEntry, ParticipantTx

__all__ = ["BLOCKED_REASON", "Abandon", "Decision", "InboxRules", "TryFailed", "inbox_keys"]

_log = logging.getLogger("sagafsm.runtime.host")  # the host's log: one logger for the host
_T = TypeVar("_T")

BLOCKED_REASON: Final = "cancelled: its compensation came first"
"""The reason an action blocked by a tombstone is answered with (the simulator's)."""

_SUCCEEDED, _FAILED = Outcome.SUCCEEDED, Outcome.FAILED

Decision = tuple[Outcome, dict[str, Any] | None, str, str | None]
"""A reply's outcome, result and reason, and the ledger effect (None: nothing happened)."""


def warn(name: str, message: Envelope, what: str, *, exc_info: bool = False) -> None:
    _log.warning(
        "participant %r: %s %r (saga %r, step %r, message %d) %s",
        *(name, message.kind.value, message.operation, message.saga_id, message.step),
        *(message.message_id, what),
        exc_info=exc_info,
    )


class Abandon(Exception):
    """Roll the command's writes back and answer nothing (the reason has been logged)."""


class TryFailed(Exception):
    """A compensation handler raised: roll its writes back, then record the failed try."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.decision: Decision = (_FAILED, None, reason, LedgerEffect.COMPENSATION_FAILED)


def inbox_keys(name: str, message: Envelope) -> Iterator[tuple[str, str]]:
    """The ``(participant, key)`` inbox entries the rules read for ``message``."""
    yield name, message.idempotency_key
    if message.kind is MessageKind.COMPENSATE and message.action_key is not None:
        yield name, message.action_key


class InboxRules:
    """The rules, as methods of the host (a mixin: :class:`~sagafsm.runtime.host.ParticipantHost`
    is the one class that uses them)."""

    _dedup = True
    """Answer a repeated key from the inbox. A test's broken variant turns it off."""
    _tombstones = True
    """Leave a tombstone for a compensation that came before its action (likewise)."""
    _timeout: float | None
    _calls: int

    async def _decide(
        self, participant: Participant, message: Envelope, tx: ParticipantTx
    ) -> Decision:
        """The reply to ``message`` and its effect, the inbox entries written to ``tx``."""
        if message.kind is MessageKind.EXECUTE:
            return await self._execute(participant, message, tx)
        if message.kind is MessageKind.COMPENSATE:
            return await self._compensate(participant, message, tx)
        self._abandon(participant, message, f"a {message.kind.value} is no command")

    async def _execute(
        self, participant: Participant, message: Envelope, tx: ParticipantTx
    ) -> Decision:
        key = message.idempotency_key
        entry = await tx.inbox_get(key)
        if entry is not None and entry.kind == "tombstone":
            return (_FAILED, None, BLOCKED_REASON, LedgerEffect.ACTION_BLOCKED)
        if entry is not None and entry.kind == "action" and self._dedup:
            return (Outcome(entry.outcome), entry.result, entry.reason, None)
        handler = participant.actions.get(message.operation)
        if handler is None:
            self._abandon(participant, message, "no handler for this action")
        self._calls += 1
        try:
            result = await self._call(participant, message, handler(action_call(message, tx)))
        except Refused as refused:
            decision: Decision = (_FAILED, None, refused.reason, LedgerEffect.ACTION_FAILED)
        else:
            if result is None:
                reason = f"{participant.name} declined {message.operation}"
                decision = (_FAILED, None, reason, LedgerEffect.ACTION_FAILED)
            elif isinstance(result, Mapping) and is_json_value(result):
                # A plain JSON copy, as the engine keeps it: what was handed out stays what it
                # was, and compares equal to what a compensation is handed back.
                decision = (_SUCCEEDED, plain_json(result), "", LedgerEffect.ACTION)
            else:
                self._abandon(
                    participant, message,
                    f"the handler returned {result!r}: a result must be a mapping of JSON data "
                    "(or None, or raise Refused, for a definite failure)",
                )  # fmt: skip
        outcome, kept, reason, _ = decision
        await tx.inbox_put(key, InboxEntry("action", outcome.value, kept, reason))
        return decision

    async def _compensate(
        self, participant: Participant, message: Envelope, tx: ParticipantTx
    ) -> Decision:
        key, action_key = message.idempotency_key, message.action_key
        entry = await tx.inbox_get(key)
        if entry is not None and entry.kind == "compensation" and self._dedup:
            return (_SUCCEEDED, None, "", None)
        if action_key is None:
            self._abandon(participant, message, "a compensation without an action_key")
        known = await tx.inbox_get(action_key)
        if known is not None and known.kind != "action":
            known = None  # a tombstone: the action was never applied
        handed_out = known.result if known is not None else None
        claimed = message.action_result
        if claimed is not None and claimed != handed_out:
            reason = f"refused: {participant.name} never handed out {dict(claimed)}"
            return (_FAILED, None, reason, LedgerEffect.COMPENSATION_REFUSED)
        if known is not None and known.outcome == _SUCCEEDED.value and handed_out is not None:
            handler = participant.compensations.get(message.operation)
            if handler is None:
                self._abandon(participant, message, "no handler for this compensation")
            self._calls += 1
            try:
                call = compensation_call(message, action_key, handed_out, tx)
                await self._call(participant, message, handler(call))
            except Refused as refused:
                raise TryFailed(refused.reason) from None
            except Abandon:
                raise
            except Exception as error:
                warn(participant.name, message, "this try failed", exc_info=True)
                raise TryFailed(f"{type(error).__name__}: {error}") from None
            effect = LedgerEffect.COMPENSATION
        else:
            if self._tombstones:
                await tx.inbox_put(action_key, InboxEntry("tombstone"))
            effect = LedgerEffect.COMPENSATION_NOOP
        await tx.inbox_put(key, InboxEntry("compensation", _SUCCEEDED.value))
        return (_SUCCEEDED, None, "", effect)

    async def _call(self, participant: Participant, message: Envelope, run: Awaitable[_T]) -> _T:
        """Await a handler, within ``handler_timeout``; an action's exception (not Refused)
        abandons the command, and so does outliving the timeout."""
        is_action = message.kind is MessageKind.EXECUTE
        # No timeout, no scope: entering one costs more than most handlers.
        scope = None if self._timeout is None else asyncio.timeout(self._timeout)
        try:
            if scope is None:
                return await run
            async with scope:
                return await run
        except TimeoutError:
            if scope is not None and scope.expired():
                self._abandon(participant, message, f"the handler hung ({self._timeout} s)")
            if is_action:
                self._abandon(participant, message, "the handler raised", exc_info=True)
            raise
        except Refused:
            raise
        except Exception:
            if is_action:
                self._abandon(participant, message, "the handler raised", exc_info=True)
            raise

    def _abandon(
        self, participant: Participant, message: Envelope, why: str, *, exc_info: bool = False
    ) -> NoReturn:
        warn(participant.name, message, f"abandoned, no reply: {why}", exc_info=exc_info)
        raise Abandon(why)
