"""The incident lifecycle, as a patrol works an incident:

    new ──acknowledge──▶ acknowledged ──dispatch──▶ dispatched ──resolve──▶ resolved
     │                        │                                     ▲
     └────────dispatch────────┴──────────────resolve────────────────┘

Resolving needs a disposition. A resolved incident is never reopened: new evidence
afterwards opens a new incident that links the old one (alerts.fusion).
"""

from __future__ import annotations

DISPOSITIONS = ("illegal_mining_confirmed", "false_alarm", "authorized_activity", "other")

_NEXT = {
    ("new", "acknowledge"): "acknowledged",
    ("new", "dispatch"): "dispatched",
    ("acknowledged", "dispatch"): "dispatched",
    ("new", "resolve"): "resolved",
    ("acknowledged", "resolve"): "resolved",
    ("dispatched", "resolve"): "resolved",
}


class LifecycleError(ValueError):
    """An action that cannot be: unknown, or missing what it needs (a request error)."""


class LifecycleConflict(LifecycleError):
    """An action the incident's present state does not allow (acknowledge a resolved one)."""


def check_transition(state: str, action: str, disposition: str | None = None) -> str:
    """The state after ``action``, or LifecycleError saying why it is not allowed."""
    if action not in ("acknowledge", "dispatch", "resolve"):
        raise LifecycleError(f"unknown action {action!r}; one of acknowledge, dispatch, resolve")
    if state == "resolved":
        raise LifecycleConflict("the incident is resolved; new evidence opens a new incident")
    new_state = _NEXT.get((state, action))
    if new_state is None:
        raise LifecycleConflict(f"cannot {action} an incident that is {state}")
    if action == "resolve" and disposition not in DISPOSITIONS:
        raise LifecycleError(f"resolving needs a disposition, one of {list(DISPOSITIONS)}")
    return new_state
