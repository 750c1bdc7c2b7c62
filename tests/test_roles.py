"""Permission table per session kind, the Forbidden messages, camera visibility."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from hub.errors import Forbidden, NotFound, ProtocolError
from hub.org import load_org
from hub.roles import (
    PERMISSIONS,
    Action,
    Role,
    SessionKind,
    allowed_actions,
    can_see_camera,
    check,
    is_allowed,
)

ROOT = Path(__file__).resolve().parent.parent

# The expected table, written out by hand so that a change to hub/roles.py
# must be made here too. Y: always; F: only with the floor; A: only once
# admitted; AF: admitted and with the floor; -: never.
ROLE_COLUMNS = [
    "chair",
    "member",
    "dispatcher",
    "mediator",
    "party",
    "trainer",
    "viewer",
    "observer",
]
EXPECTED = {
    "joint": """
        publish_camera      Y Y Y Y - Y F -
        publish_microphone  Y Y Y Y - Y F -
        share_screen        Y Y Y Y - Y F -
        subscribe           Y Y Y Y - Y Y Y
        chat                Y Y Y Y - Y Y -
        mute_others         Y - - - - - - -
        remove_peer         Y - - - - - - -
        lock_room           Y - - - - - - -
        push_camera         Y Y Y Y - Y - -
        assign_task         Y - Y - - - - -
        roll_call           Y - Y - - - - -
        give_floor          Y - - - - - - -
        admit_party         - - - - - - - -
        side_room           - - - - - - - -
        raise_hand          - Y Y Y - Y Y -
        start_recording     Y - - - - - - -
        view_cameras        Y Y Y Y - Y - -
    """,
    "mediation": """
        publish_camera      Y Y Y Y A  Y F -
        publish_microphone  Y Y Y Y A  Y F -
        share_screen        Y Y Y Y AF Y F -
        subscribe           Y Y Y Y A  Y Y Y
        chat                Y Y Y Y A  Y Y -
        mute_others         Y - - Y -  - - -
        remove_peer         Y - - Y -  - - -
        lock_room           Y - - Y -  - - -
        push_camera         - - - - -  - - -
        assign_task         - - - - -  - - -
        roll_call           - - - - -  - - -
        give_floor          Y - - Y -  - - -
        admit_party         Y - - Y -  - - -
        side_room           Y - - Y -  - - -
        raise_hand          - Y Y - A  Y Y -
        start_recording     Y - - Y -  - - -
        view_cameras        - - - - -  - - -
    """,
    "lecture": """
        publish_camera      Y Y Y Y - Y F -
        publish_microphone  Y F F F - Y F -
        share_screen        Y F F F - Y F -
        subscribe           Y Y Y Y - Y Y Y
        chat                Y Y Y Y - Y Y -
        mute_others         Y - - - - Y - -
        remove_peer         Y - - - - Y - -
        lock_room           Y - - - - Y - -
        push_camera         - - - - - - - -
        assign_task         - - - - - - - -
        roll_call           Y - - - - Y - -
        give_floor          Y - - - - Y - -
        admit_party         - - - - - - - -
        side_room           - - - - - - - -
        raise_hand          - Y Y Y - - Y -
        start_recording     Y - - - - Y - -
        view_cameras        - - - - - - - -
    """,
}


def _parse_expected() -> dict[tuple[str, str, str], str]:
    cells = {}
    for kind, text in EXPECTED.items():
        for line in text.strip().splitlines():
            action, *marks = line.split()
            assert len(marks) == len(ROLE_COLUMNS), line
            for role, mark in zip(ROLE_COLUMNS, marks, strict=True):
                cells[(kind, role, action)] = mark
    return cells


EXPECTED_CELLS = _parse_expected()


def _expect_allowed(mark: str, has_floor: bool, admitted: bool) -> bool:
    if mark == "-":
        return False
    if "F" in mark and not has_floor:
        return False
    return not ("A" in mark and not admitted)


def test_expected_table_covers_every_name():
    kinds = {kind for kind, _, _ in EXPECTED_CELLS}
    roles = {role for _, role, _ in EXPECTED_CELLS}
    actions = {action for _, _, action in EXPECTED_CELLS}

    assert kinds == {kind.value for kind in SessionKind}
    assert roles == {role.value for role in Role}
    assert actions == {action.value for action in Action}
    assert len(EXPECTED_CELLS) == len(SessionKind) * len(Role) * len(Action)


CASES = [
    (kind, role, action, mark, has_floor, admitted)
    for (kind, role, action), mark in EXPECTED_CELLS.items()
    for has_floor, admitted in itertools.product([False, True], repeat=2)
]


@pytest.mark.parametrize(
    ("kind", "role", "action", "mark", "has_floor", "admitted"),
    CASES,
    ids=[
        f"{kind}-{role}-{action}-floor{int(floor)}-admitted{int(admitted)}"
        for kind, role, action, _, floor, admitted in CASES
    ],
)
def test_check_matches_table(kind, role, action, mark, has_floor, admitted):
    expected = _expect_allowed(mark, has_floor, admitted)

    if expected:
        check(kind, role, action, has_floor=has_floor, admitted=admitted)
    else:
        with pytest.raises(Forbidden) as caught:
            check(kind, role, action, has_floor=has_floor, admitted=admitted)
        assert caught.value.code == "forbidden"
        assert repr(role) in caught.value.message
        assert action in caught.value.message
        assert f"{kind} session" in caught.value.message
    assert is_allowed(kind, role, action, has_floor=has_floor, admitted=admitted) is (
        expected
    )
    assert (
        action in allowed_actions(kind, role, has_floor=has_floor, admitted=admitted)
    ) is expected


def test_viewer_without_floor_told_to_raise_hand():
    with pytest.raises(Forbidden) as caught:
        check("lecture", "viewer", "publish_microphone")

    assert "without the floor" in caught.value.message
    assert "raise a hand" in caught.value.message


def test_party_before_admission_told_to_wait():
    with pytest.raises(Forbidden) as caught:
        check("mediation", "party", "publish_camera", admitted=False)

    assert "before being admitted" in caught.value.message
    assert "waiting room" in caught.value.message


def test_denied_action_names_roles_that_may():
    with pytest.raises(Forbidden) as caught:
        check("joint", "member", "assign_task")

    assert caught.value.message.endswith("roles that may: chair, dispatcher")


def test_action_no_role_may_do_says_so():
    with pytest.raises(Forbidden) as caught:
        check("lecture", "chair", "push_camera")

    assert "no role may do this in a lecture session" in caught.value.message


def test_observer_only_subscribes():
    for kind in SessionKind:
        for floor, admitted in itertools.product([False, True], repeat=2):
            assert allowed_actions(
                kind, "observer", has_floor=floor, admitted=admitted
            ) == {Action.SUBSCRIBE}


def test_party_has_nothing_outside_mediation():
    for kind in ("joint", "lecture"):
        assert allowed_actions(kind, "party", has_floor=True, admitted=True) == set()


def test_floor_grantees_can_raise_hand():
    # A role that needs the floor for an action must be able to request it.
    for kind, roles in PERMISSIONS.items():
        for role, rules in roles.items():
            if any(rule.needs_floor for rule in rules.values()):
                assert is_allowed(kind, role, "raise_hand", admitted=True), (
                    kind,
                    role,
                )


@pytest.mark.parametrize(
    ("kind", "role", "action", "wrong"),
    [
        ("debate", "chair", "chat", "session kind 'debate'"),
        ("joint", "emperor", "chat", "role 'emperor'"),
        ("joint", "chair", "fly", "action 'fly'"),
        ("joint", None, "chat", "role None"),
    ],
)
def test_unknown_name_is_protocol_error(kind, role, action, wrong):
    with pytest.raises(ProtocolError) as caught:
        check(kind, role, action)

    assert caught.value.code == "bad-message"
    assert f"unknown {wrong}" in caught.value.message
    assert "expected one of" in caught.value.message


def test_enum_members_accepted_like_strings():
    check(SessionKind.JOINT, Role.CHAIR, Action.LOCK_ROOM)
    with pytest.raises(Forbidden):
        check(SessionKind.JOINT, Role.MEMBER, Action.LOCK_ROOM)


@pytest.fixture(scope="module")
def org():
    return load_org(ROOT / "configs" / "org-puer.toml")


@pytest.mark.parametrize(
    ("user_unit", "camera_unit", "visible"),
    [
        ("puer", "puer", True),
        ("puer", "puer.simao", True),
        ("puer", "puer.ninger.mohei", True),
        ("puer.simao", "puer.simao", True),
        ("puer.simao", "puer.simao.nanping", True),
        ("puer.simao", "puer", False),
        ("puer.simao", "puer.ninger", False),
        ("puer.simao", "puer.ninger.mohei", False),
        ("puer.simao.nanping", "puer.simao", False),
        ("puer.simao.nanping", "puer.simao.yixiang", False),
        ("puer.simao.nanping", "puer.simao.nanping", True),
    ],
)
def test_can_see_camera(org, user_unit, camera_unit, visible):
    assert can_see_camera(org, user_unit, camera_unit) is visible


def test_can_see_camera_unknown_unit(org):
    with pytest.raises(NotFound) as caught:
        can_see_camera(org, "puer.simao", "puer.simao.atlantis")

    assert caught.value.code == "not-found"
    assert "'puer.simao.atlantis'" in caught.value.message


# docs/roles.md marks: ✓ always, F with the floor, A once admitted,
# A+F both, — never.
_DOC_MARKS = {"✓": "Y", "F": "F", "A": "A", "A+F": "AF", "—": "-"}


def _parse_roles_doc() -> dict[tuple[str, str, str], str]:
    text = (ROOT / "docs" / "roles.md").read_text(encoding="utf-8")
    cells = {}
    kind = None
    roles: list[str] = []
    for line in text.splitlines():
        heading = re.match(r"#+ .*\(`(\w+)`\)\s*$", line)
        if heading:
            kind = heading.group(1) if heading.group(1) in EXPECTED else None
            continue
        if kind is None or not line.startswith("|"):
            continue
        columns = [cell.strip() for cell in line.strip().strip("|").split("|")]
        header_roles = [re.search(r"`(\w+)`", cell) for cell in columns[1:]]
        if all(header_roles) and {m.group(1) for m in header_roles} == set(
            ROLE_COLUMNS
        ):
            roles = [m.group(1) for m in header_roles]
            continue
        action = re.search(r"`(\w+)`", columns[0])
        if action and action.group(1) in {a.value for a in Action}:
            for role, mark in zip(roles, columns[1:], strict=True):
                cells[(kind, role, action.group(1))] = _DOC_MARKS[mark]
    return cells


def test_roles_doc_matches_table():
    documented = _parse_roles_doc()

    assert set(documented) == set(EXPECTED_CELLS)
    for key, mark in EXPECTED_CELLS.items():
        assert documented[key] == mark, key
