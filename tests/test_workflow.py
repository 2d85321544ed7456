"""The lifecycle tables, checked pair by pair against tables written out independently here."""

from __future__ import annotations

import itertools

import pytest

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
from tickets.workflow import (
    DEPARTMENT_ACTIONS,
    FINAL,
    allowed_actions,
    check_role,
    next_assignment_state,
    next_status,
)

S, A, St = Status, Action, AssignmentState

# -- the expected tables, written out by hand: a change to tickets/workflow.py must show here --
EXPECTED_TRANSITIONS: dict[tuple[Status, Action], Status] = {
    # 受理 new
    (S.NEW, A.ANSWER): S.ANSWERED,
    (S.NEW, A.DISPATCH): S.DISPATCHED,
    (S.NEW, A.MERGE): S.MERGED,
    (S.NEW, A.EDIT): S.NEW,
    (S.NEW, A.SUPPLEMENT): S.NEW,
    # 直接答复 answered
    (S.ANSWERED, A.REVISIT): S.REVISITED,
    (S.ANSWERED, A.REOPEN): S.REOPENED,
    (S.ANSWERED, A.CLOSE): S.CLOSED,
    (S.ANSWERED, A.EDIT): S.ANSWERED,
    (S.ANSWERED, A.SUPPLEMENT): S.ANSWERED,
    # 已派单 dispatched
    (S.DISPATCHED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.SIGN): S.ACCEPTED,
    (S.DISPATCHED, A.RETURN): S.RETURNED,
    (S.DISPATCHED, A.FORWARD): S.DISPATCHED,
    (S.DISPATCHED, A.MERGE): S.MERGED,
    (S.DISPATCHED, A.SUPERVISE): S.DISPATCHED,
    (S.DISPATCHED, A.URGE): S.DISPATCHED,
    (S.DISPATCHED, A.EDIT): S.DISPATCHED,
    (S.DISPATCHED, A.SUPPLEMENT): S.DISPATCHED,
    # 办理中 accepted
    (S.ACCEPTED, A.RETURN): S.RETURNED,
    (S.ACCEPTED, A.FORWARD): S.DISPATCHED,
    (S.ACCEPTED, A.REQUEST_EXTENSION): S.ACCEPTED,
    (S.ACCEPTED, A.APPROVE_EXTENSION): S.ACCEPTED,
    (S.ACCEPTED, A.DENY_EXTENSION): S.ACCEPTED,
    (S.ACCEPTED, A.REPLY): S.REPLIED,
    (S.ACCEPTED, A.SUPERVISE): S.ACCEPTED,
    (S.ACCEPTED, A.URGE): S.ACCEPTED,
    (S.ACCEPTED, A.EDIT): S.ACCEPTED,
    (S.ACCEPTED, A.SUPPLEMENT): S.ACCEPTED,
    # 已退单 returned
    (S.RETURNED, A.ANSWER): S.ANSWERED,
    (S.RETURNED, A.DISPATCH): S.DISPATCHED,
    (S.RETURNED, A.MERGE): S.MERGED,
    (S.RETURNED, A.EDIT): S.RETURNED,
    (S.RETURNED, A.SUPPLEMENT): S.RETURNED,
    # 已反馈待审核 replied
    (S.REPLIED, A.APPROVE): S.REVIEWED,
    (S.REPLIED, A.REJECT): S.REWORK,
    (S.REPLIED, A.EDIT): S.REPLIED,
    (S.REPLIED, A.SUPPLEMENT): S.REPLIED,
    # 重办 rework
    (S.REWORK, A.REQUEST_EXTENSION): S.REWORK,
    (S.REWORK, A.APPROVE_EXTENSION): S.REWORK,
    (S.REWORK, A.DENY_EXTENSION): S.REWORK,
    (S.REWORK, A.REPLY): S.REPLIED,
    (S.REWORK, A.SUPERVISE): S.REWORK,
    (S.REWORK, A.URGE): S.REWORK,
    (S.REWORK, A.EDIT): S.REWORK,
    (S.REWORK, A.SUPPLEMENT): S.REWORK,
    # 已审核待回访 reviewed
    (S.REVIEWED, A.REVISIT): S.REVISITED,
    (S.REVIEWED, A.REOPEN): S.REOPENED,
    (S.REVIEWED, A.CLOSE): S.CLOSED,
    (S.REVIEWED, A.EDIT): S.REVIEWED,
    (S.REVIEWED, A.SUPPLEMENT): S.REVIEWED,
    # 已回访 revisited
    (S.REVISITED, A.REOPEN): S.REOPENED,
    (S.REVISITED, A.CLOSE): S.CLOSED,
    # 已重启 reopened
    (S.REOPENED, A.ANSWER): S.ANSWERED,
    (S.REOPENED, A.DISPATCH): S.DISPATCHED,
    (S.REOPENED, A.MERGE): S.MERGED,
    (S.REOPENED, A.EDIT): S.REOPENED,
    (S.REOPENED, A.SUPPLEMENT): S.REOPENED,
    # 已办结 closed: only 重启
    (S.CLOSED, A.REOPEN): S.REOPENED,
    # 已合并 merged: nothing
}
# 添加附件 in every state but the final ones
EXPECTED_TRANSITIONS.update({(s, A.ATTACH): s for s in Status if s not in (S.CLOSED, S.MERGED)})

EXPECTED_ROLES: dict[Action, set[Role]] = {
    A.ANSWER: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR},
    A.DISPATCH: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.SYSTEM},  # triage
    A.SIGN: {Role.DEPARTMENT},
    A.RETURN: {Role.DEPARTMENT},
    A.FORWARD: {Role.DEPARTMENT},
    A.REQUEST_EXTENSION: {Role.DEPARTMENT},
    A.REPLY: {Role.DEPARTMENT},
    A.APPROVE_EXTENSION: {Role.DISPATCHER, Role.SUPERVISOR},
    A.DENY_EXTENSION: {Role.DISPATCHER, Role.SUPERVISOR},
    A.APPROVE: {Role.DISPATCHER, Role.SUPERVISOR},
    A.REJECT: {Role.DISPATCHER, Role.SUPERVISOR},
    A.REVISIT: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.CITIZEN, Role.SYSTEM},
    A.REOPEN: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.CITIZEN, Role.SYSTEM},
    A.CLOSE: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.SYSTEM},
    A.MERGE: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR},
    A.SUPERVISE: {Role.SUPERVISOR, Role.MANAGER, Role.SYSTEM},
    A.URGE: {Role.DISPATCHER, Role.SUPERVISOR, Role.SYSTEM},
    A.EDIT: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR},
    A.SUPPLEMENT: {Role.CITIZEN},
    A.ATTACH: {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.DEPARTMENT},
}

EXPECTED_ASSIGNMENT: dict[tuple[AssignmentState, Action], AssignmentState] = {
    (St.PENDING, A.SIGN): St.ACCEPTED,
    (St.PENDING, A.RETURN): St.RETURNED,
    (St.ACCEPTED, A.RETURN): St.RETURNED,
    (St.PENDING, A.FORWARD): St.FORWARDED,
    (St.ACCEPTED, A.FORWARD): St.FORWARDED,
    (St.ACCEPTED, A.REQUEST_EXTENSION): St.ACCEPTED,
    (St.ACCEPTED, A.REPLY): St.REPLIED,
}
# an assisting department (协办) signs, returns and replies on its own assignment only while
# the order is being handled, and never moves the order
EXPECTED_ASSIST_ACTIONS = {A.SIGN, A.RETURN, A.REPLY}
EXPECTED_ASSIST_STATUSES = {S.DISPATCHED, S.ACCEPTED, S.REWORK}


# -- ticket status ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(Status, Action)), ids=lambda v: v.value
)
def test_next_status_every_pair_matches_table(status: Status, action: Action) -> None:
    expected = EXPECTED_TRANSITIONS.get((status, action))
    if expected is None:
        with pytest.raises(IllegalTransition) as err:
            next_status(status, action)
        assert err.value.code == "illegal_transition"
        assert err.value.details == {"status": status.value, "action": action.value}
        assert STATUS_LABELS[status] in err.value.message
        assert ACTION_LABELS[action] in err.value.message
    else:
        assert next_status(status, action) is expected


def test_transition_table_has_exactly_the_expected_legal_pairs() -> None:
    legal = set()
    for status, action in itertools.product(Status, Action):
        try:
            next_status(status, action)
        except IllegalTransition:
            continue
        legal.add((status, action))
    assert legal == set(EXPECTED_TRANSITIONS)
    assert len(legal) == 59 + 10  # and 添加附件 in the ten states that are not final


def test_final_states_allow_nothing_but_reopen_from_closed() -> None:
    assert frozenset({S.CLOSED, S.MERGED}) == FINAL
    for status, action in itertools.product(FINAL, Action):
        if (status, action) == (S.CLOSED, A.REOPEN):
            assert next_status(status, action) is S.REOPENED
        else:
            with pytest.raises(IllegalTransition):
                next_status(status, action)
    for role in Role:
        assert allowed_actions(S.MERGED, role) == []
        expected = [A.REOPEN] if role in EXPECTED_ROLES[A.REOPEN] else []
        assert allowed_actions(S.CLOSED, role) == expected


def _reachable(start: Status) -> set[Status]:
    seen, todo = {start}, [start]
    while todo:
        cur = todo.pop()
        for (src, _), dst in EXPECTED_TRANSITIONS.items():
            if src is cur and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def test_every_status_is_reachable_from_new_and_can_reach_a_final_state() -> None:
    assert _reachable(S.NEW) == set(Status)
    for status in set(Status) - FINAL:
        assert _reachable(status) & FINAL, status


def test_every_status_action_and_assignment_state_has_a_chinese_label() -> None:
    assert set(STATUS_LABELS) == set(Status)
    assert set(ACTION_LABELS) == set(Action)
    assert set(ASSIGNMENT_STATE_LABELS) == set(AssignmentState)


# -- roles --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "role"), list(itertools.product(Action, Role)), ids=lambda v: v.value
)
def test_check_role_every_pair_matches_table(action: Action, role: Role) -> None:
    if role in EXPECTED_ROLES[action]:
        assert check_role(role, action) is None
    else:
        with pytest.raises(RoleForbidden) as err:
            check_role(role, action)
        assert err.value.code == "role_forbidden"
        assert err.value.details == {"action": action.value, "role": role.value}


def test_admin_may_take_no_workflow_action() -> None:
    for action in Action:
        with pytest.raises(RoleForbidden):
            check_role(Role.ADMIN, action)


# -- assignments (主办 / 协办) -------------------------------------------------------------------
def _expected_assignment(
    role: AssignmentRole, status: Status, state: AssignmentState, action: Action
) -> tuple[AssignmentState, Status] | None:
    if role is AssignmentRole.ASSIST:
        if action not in EXPECTED_ASSIST_ACTIONS or status not in EXPECTED_ASSIST_STATUSES:
            return None
        new_status: Status | None = status
    else:
        new_status = EXPECTED_TRANSITIONS.get((status, action))
    new_state = EXPECTED_ASSIGNMENT.get((state, action))
    if new_status is None or new_state is None:
        return None
    return new_state, new_status


@pytest.mark.parametrize(
    ("role", "status"), list(itertools.product(AssignmentRole, Status)), ids=lambda v: v.value
)
def test_next_assignment_state_every_combination(role: AssignmentRole, status: Status) -> None:
    wrong = []
    for state, action in itertools.product(AssignmentState, Action):
        expected = _expected_assignment(role, status, state, action)
        try:
            got: object = next_assignment_state(status, role, state, action)
        except IllegalTransition:
            got = None
        if got != expected:
            wrong.append((state.value, action.value, expected, got))
    assert wrong == []


@pytest.mark.parametrize(
    ("status", "role", "state", "action", "expected"),
    [
        # 主办 signs: the order is accepted
        (S.DISPATCHED, "lead", St.PENDING, A.SIGN, (St.ACCEPTED, S.ACCEPTED)),
        # 协办 signs before the lead: only its assignment moves
        (S.DISPATCHED, "assist", St.PENDING, A.SIGN, (St.ACCEPTED, S.DISPATCHED)),
        (S.ACCEPTED, "assist", St.PENDING, A.SIGN, (St.ACCEPTED, S.ACCEPTED)),
        (S.ACCEPTED, "lead", St.ACCEPTED, A.REPLY, (St.REPLIED, S.REPLIED)),
        (S.ACCEPTED, "assist", St.ACCEPTED, A.REPLY, (St.REPLIED, S.ACCEPTED)),
        (S.REWORK, "lead", St.ACCEPTED, A.REPLY, (St.REPLIED, S.REPLIED)),
        (S.REWORK, "assist", St.ACCEPTED, A.REPLY, (St.REPLIED, S.REWORK)),
        (S.DISPATCHED, "lead", St.PENDING, A.RETURN, (St.RETURNED, S.RETURNED)),
        (S.ACCEPTED, "lead", St.ACCEPTED, A.RETURN, (St.RETURNED, S.RETURNED)),
        (S.ACCEPTED, "assist", St.ACCEPTED, A.RETURN, (St.RETURNED, S.ACCEPTED)),
        (S.DISPATCHED, "lead", St.PENDING, A.FORWARD, (St.FORWARDED, S.DISPATCHED)),
        (S.ACCEPTED, "lead", St.ACCEPTED, A.FORWARD, (St.FORWARDED, S.DISPATCHED)),
        (S.ACCEPTED, "lead", St.ACCEPTED, A.REQUEST_EXTENSION, (St.ACCEPTED, S.ACCEPTED)),
        (S.REWORK, "lead", St.ACCEPTED, A.REQUEST_EXTENSION, (St.ACCEPTED, S.REWORK)),
        # refused
        (S.ACCEPTED, "assist", St.ACCEPTED, A.FORWARD, None),
        (S.ACCEPTED, "assist", St.ACCEPTED, A.REQUEST_EXTENSION, None),
        (S.REPLIED, "assist", St.ACCEPTED, A.REPLY, None),
        (S.RETURNED, "assist", St.PENDING, A.SIGN, None),
        (S.DISPATCHED, "lead", St.ACCEPTED, A.SIGN, None),  # signed twice
        (S.ACCEPTED, "lead", St.PENDING, A.REPLY, None),  # reply before signing
        (S.DISPATCHED, "lead", St.PENDING, A.REQUEST_EXTENSION, None),
        (S.ACCEPTED, "lead", St.CANCELLED, A.REPLY, None),
        (S.ACCEPTED, "lead", St.FORWARDED, A.SIGN, None),
        (S.ACCEPTED, "lead", St.RETURNED, A.REPLY, None),
        (S.REWORK, "lead", St.REPLIED, A.REPLY, None),
    ],
)
def test_next_assignment_state_named_cases(
    status: Status,
    role: str,
    state: AssignmentState,
    action: Action,
    expected: tuple[AssignmentState, Status] | None,
) -> None:
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_assignment_state(status, AssignmentRole(role), state, action)
    else:
        assert next_assignment_state(status, AssignmentRole(role), state, action) == expected


def test_department_actions_are_exactly_the_department_role_actions() -> None:
    expected = {A.SIGN, A.RETURN, A.FORWARD, A.REQUEST_EXTENSION, A.REPLY}
    assert set(DEPARTMENT_ACTIONS) == expected
    # and 添加附件, which a department may do on an order it handles (not a task step)
    department = {a for a, roles in EXPECTED_ROLES.items() if Role.DEPARTMENT in roles}
    assert department == expected | {A.ATTACH}


# -- what the UI offers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "role"), list(itertools.product(Status, Role)), ids=lambda v: v.value
)
def test_allowed_actions_match_both_tables(status: Status, role: Role) -> None:
    expected = [
        a
        for a in Action
        if (status, a) in EXPECTED_TRANSITIONS
        and role in EXPECTED_ROLES[a]
        and a is not A.ATTACH  # attachments have their own form, not an action form
    ]
    got = allowed_actions(status, role)
    assert got == expected
    for action in got:
        check_role(role, action)
        next_status(status, action)


@pytest.mark.parametrize(
    ("status", "role", "expected"),
    [
        (S.NEW, Role.AGENT, [A.ANSWER, A.DISPATCH, A.MERGE, A.EDIT]),
        (S.NEW, Role.DEPARTMENT, []),
        (S.DISPATCHED, Role.DEPARTMENT, [A.SIGN, A.RETURN, A.FORWARD]),
        (S.DISPATCHED, Role.SUPERVISOR, [A.DISPATCH, A.MERGE, A.SUPERVISE, A.URGE, A.EDIT]),
        (S.DISPATCHED, Role.MANAGER, [A.SUPERVISE]),
        (S.ACCEPTED, Role.DEPARTMENT, [A.RETURN, A.FORWARD, A.REQUEST_EXTENSION, A.REPLY]),
        (S.REPLIED, Role.DISPATCHER, [A.APPROVE, A.REJECT, A.EDIT]),
        (S.REVIEWED, Role.CITIZEN, [A.REVISIT, A.REOPEN, A.SUPPLEMENT]),
        (S.REVIEWED, Role.SYSTEM, [A.REVISIT, A.REOPEN, A.CLOSE]),
        (S.ANSWERED, Role.ADMIN, []),
    ],
)
def test_allowed_actions_named_cases(status: Status, role: Role, expected: list[Action]) -> None:
    assert allowed_actions(status, role) == expected
