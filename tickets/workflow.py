"""The work-order lifecycle as one transition table: pure code, no I/O."""

from __future__ import annotations

from tickets.errors import IllegalTransition, RoleForbidden
from tickets.model import (
    ACTION_LABELS,
    ASSIGNMENT_STATE_LABELS,
    STATUS_LABELS,
    Action,
    AssignmentRole,
    AssignmentState,
    Role,
    Status,
)

S, A = Status, Action

# (ticket status, action) -> ticket status after it. Lead-department actions move the order;
# the same actions by an assisting department only move that assignment (ASSIST_* below).
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (S.NEW, A.ANSWER): S.ANSWERED,
    (S.RETURNED, A.ANSWER): S.ANSWERED,
    (S.REOPENED, A.ANSWER): S.ANSWERED,
    (S.NEW, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.DISPATCH): S.DISPATCHED,  # 改派 before anyone signed
    (S.RETURNED, A.DISPATCH): S.DISPATCHED,
    (S.REOPENED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.SIGN): S.ACCEPTED,
    (S.DISPATCHED, A.RETURN): S.RETURNED,
    (S.ACCEPTED, A.RETURN): S.RETURNED,
    (S.DISPATCHED, A.FORWARD): S.DISPATCHED,
    (S.ACCEPTED, A.FORWARD): S.DISPATCHED,
    (S.ACCEPTED, A.REQUEST_EXTENSION): S.ACCEPTED,
    (S.REWORK, A.REQUEST_EXTENSION): S.REWORK,
    (S.ACCEPTED, A.APPROVE_EXTENSION): S.ACCEPTED,
    (S.REWORK, A.APPROVE_EXTENSION): S.REWORK,
    (S.ACCEPTED, A.DENY_EXTENSION): S.ACCEPTED,
    (S.REWORK, A.DENY_EXTENSION): S.REWORK,
    (S.ACCEPTED, A.REPLY): S.REPLIED,
    (S.REWORK, A.REPLY): S.REPLIED,
    (S.REPLIED, A.APPROVE): S.REVIEWED,
    (S.REPLIED, A.REJECT): S.REWORK,
    (S.ANSWERED, A.REVISIT): S.REVISITED,
    (S.REVIEWED, A.REVISIT): S.REVISITED,
    (S.ANSWERED, A.REOPEN): S.REOPENED,
    (S.REVIEWED, A.REOPEN): S.REOPENED,
    (S.REVISITED, A.REOPEN): S.REOPENED,
    (S.CLOSED, A.REOPEN): S.REOPENED,
    (S.ANSWERED, A.CLOSE): S.CLOSED,
    (S.REVIEWED, A.CLOSE): S.CLOSED,
    (S.REVISITED, A.CLOSE): S.CLOSED,
    (S.NEW, A.MERGE): S.MERGED,
    (S.DISPATCHED, A.MERGE): S.MERGED,
    (S.RETURNED, A.MERGE): S.MERGED,
    (S.REOPENED, A.MERGE): S.MERGED,
}
for _s in (S.DISPATCHED, S.ACCEPTED, S.REWORK):
    TRANSITIONS[(_s, A.SUPERVISE)] = _s
    TRANSITIONS[(_s, A.URGE)] = _s
for _s in (
    S.NEW,
    S.ANSWERED,
    S.DISPATCHED,
    S.ACCEPTED,
    S.RETURNED,
    S.REPLIED,
    S.REWORK,
    S.REVIEWED,
    S.REOPENED,
):
    TRANSITIONS[(_s, A.EDIT)] = _s
    TRANSITIONS[(_s, A.SUPPLEMENT)] = _s
for _s in Status:
    if _s not in (S.CLOSED, S.MERGED):
        TRANSITIONS[(_s, A.ATTACH)] = _s

FINAL = frozenset({S.CLOSED, S.MERGED})

# the citizen's request is still being handled: no answer yet (or it was reopened)
IN_HAND = frozenset({S.NEW, S.DISPATCHED, S.ACCEPTED, S.RETURNED, S.REPLIED, S.REWORK, S.REOPENED})

# a person deciding an order's way without dispatching it takes it out of the triage queue
# (dispatch sets its own route state: auto by the triage, manual by a person)
ROUTING_DECISIONS = frozenset({A.ANSWER, A.MERGE})

_STAFF = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR})
_DESK = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_DEPT = frozenset({Role.DEPARTMENT})

ROLES: dict[Action, frozenset[Role]] = {
    A.ANSWER: _STAFF,
    A.DISPATCH: _STAFF | {Role.SYSTEM},  # the triage dispatches confident predictions
    A.SIGN: _DEPT,
    A.RETURN: _DEPT,
    A.FORWARD: _DEPT,
    A.REQUEST_EXTENSION: _DEPT,
    A.REPLY: _DEPT,
    A.APPROVE_EXTENSION: _DESK,
    A.DENY_EXTENSION: _DESK,
    A.APPROVE: _DESK,
    A.REJECT: _DESK,
    A.REVISIT: _STAFF | {Role.CITIZEN, Role.SYSTEM},
    A.REOPEN: _STAFF | {Role.CITIZEN, Role.SYSTEM},
    A.CLOSE: _STAFF | {Role.SYSTEM},
    A.MERGE: _STAFF,
    A.SUPERVISE: frozenset({Role.SUPERVISOR, Role.MANAGER, Role.SYSTEM}),
    A.URGE: _DESK | {Role.SYSTEM},
    A.EDIT: _STAFF,
    A.SUPPLEMENT: frozenset({Role.CITIZEN}),  # through a channel adapter (SMS)
    # staff of the centre, a department on an order it handles now, the citizen at intake
    A.ATTACH: _STAFF | _DEPT,
}

# Actions a department takes on its own assignment, and how that assignment moves.
ASSIGNMENT_TRANSITIONS: dict[tuple[AssignmentState, Action], AssignmentState] = {
    (AssignmentState.PENDING, A.SIGN): AssignmentState.ACCEPTED,
    (AssignmentState.PENDING, A.RETURN): AssignmentState.RETURNED,
    (AssignmentState.ACCEPTED, A.RETURN): AssignmentState.RETURNED,
    (AssignmentState.PENDING, A.FORWARD): AssignmentState.FORWARDED,
    (AssignmentState.ACCEPTED, A.FORWARD): AssignmentState.FORWARDED,
    (AssignmentState.ACCEPTED, A.REQUEST_EXTENSION): AssignmentState.ACCEPTED,
    (AssignmentState.ACCEPTED, A.REPLY): AssignmentState.REPLIED,
}
DEPARTMENT_ACTIONS = frozenset(a for _, a in ASSIGNMENT_TRANSITIONS)

# An assisting department may act on its assignment while the order is being handled.
ASSIST_TICKET_STATES = frozenset({S.DISPATCHED, S.ACCEPTED, S.REWORK})
ASSIST_ACTIONS = frozenset({A.SIGN, A.RETURN, A.REPLY})


def check_role(role: Role, action: Action) -> None:
    if role not in ROLES[action]:
        raise RoleForbidden(
            f"当前角色无权执行“{ACTION_LABELS[action]}”", action=action.value, role=role.value
        )


def next_status(status: Status, action: Action) -> Status:
    """The order's status after `action`, or IllegalTransition."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise IllegalTransition(
            f"工单处于“{STATUS_LABELS[status]}”状态，不能“{ACTION_LABELS[action]}”",
            status=status.value,
            action=action.value,
        ) from None


def next_assignment_state(
    ticket_status: Status, role: AssignmentRole, state: AssignmentState, action: Action
) -> tuple[AssignmentState, Status]:
    """A department acts on its own assignment: (new assignment state, new order status)."""
    if role is AssignmentRole.ASSIST:
        if action not in ASSIST_ACTIONS or ticket_status not in ASSIST_TICKET_STATES:
            raise IllegalTransition(
                f"协办单位在工单“{STATUS_LABELS[ticket_status]}”时不能“{ACTION_LABELS[action]}”",
                status=ticket_status.value,
                action=action.value,
            )
        new_ticket = ticket_status
    else:
        new_ticket = next_status(ticket_status, action)
    try:
        return ASSIGNMENT_TRANSITIONS[(state, action)], new_ticket
    except KeyError:
        raise IllegalTransition(
            f"承办任务处于“{ASSIGNMENT_STATE_LABELS[state]}”状态，不能“{ACTION_LABELS[action]}”",
            assignment_state=state.value,
            action=action.value,
        ) from None


# actions with a UI of their own rather than a form among the order's actions
OWN_UI = frozenset({A.ATTACH})


def allowed_actions(status: Status, role: Role) -> list[Action]:
    """What `role` may do to an order in `status` (before per-order guards), for the UI."""
    return [
        a for a in Action if (status, a) in TRANSITIONS and role in ROLES[a] and a not in OWN_UI
    ]
