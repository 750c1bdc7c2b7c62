"""Roles, actions and the permission table for each session kind.

A participant's role comes from its token. What the role may do depends on the
kind of session the room runs: a joint command session (joint), a dispute
mediation with outside parties (mediation) or a training lecture (lecture).
Two runtime conditions refine the table: whether the host gave the participant
the floor, and whether a hearing party was admitted from the waiting room.
docs/roles.md shows the same table with Chinese names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from hub.errors import Forbidden, ProtocolError

if TYPE_CHECKING:
    from hub.org import Org


class Role(StrEnum):
    CHAIR = "chair"
    MEMBER = "member"
    DISPATCHER = "dispatcher"
    MEDIATOR = "mediator"
    PARTY = "party"
    TRAINER = "trainer"
    VIEWER = "viewer"
    OBSERVER = "observer"


class Action(StrEnum):
    PUBLISH_CAMERA = "publish_camera"
    PUBLISH_MICROPHONE = "publish_microphone"
    SHARE_SCREEN = "share_screen"
    SUBSCRIBE = "subscribe"
    CHAT = "chat"
    MUTE_OTHERS = "mute_others"
    REMOVE_PEER = "remove_peer"
    LOCK_ROOM = "lock_room"
    PUSH_CAMERA = "push_camera"
    ASSIGN_TASK = "assign_task"
    ROLL_CALL = "roll_call"
    GIVE_FLOOR = "give_floor"
    ADMIT_PARTY = "admit_party"
    SIDE_ROOM = "side_room"
    RAISE_HAND = "raise_hand"
    START_RECORDING = "start_recording"
    VIEW_CAMERAS = "view_cameras"


class SessionKind(StrEnum):
    JOINT = "joint"
    MEDIATION = "mediation"
    LECTURE = "lecture"


ROLE_NAMES_ZH: Mapping[Role, str] = MappingProxyType(
    {
        Role.CHAIR: "主持人",
        Role.MEMBER: "分会场",
        Role.DISPATCHER: "调度员",
        Role.MEDIATOR: "调解员",
        Role.PARTY: "当事人",
        Role.TRAINER: "主讲人",
        Role.VIEWER: "收看人员",
        Role.OBSERVER: "旁听人员",
    }
)

ACTION_NAMES_ZH: Mapping[Action, str] = MappingProxyType(
    {
        Action.PUBLISH_CAMERA: "开启摄像头",
        Action.PUBLISH_MICROPHONE: "开启麦克风",
        Action.SHARE_SCREEN: "共享屏幕",
        Action.SUBSCRIBE: "收看收听",
        Action.CHAT: "发送文字消息",
        Action.MUTE_OTHERS: "静音他人",
        Action.REMOVE_PEER: "移出会场",
        Action.LOCK_ROOM: "锁定会场",
        Action.PUSH_CAMERA: "推送监控画面",
        Action.ASSIGN_TASK: "下发任务",
        Action.ROLL_CALL: "点名",
        Action.GIVE_FLOOR: "指定发言",
        Action.ADMIT_PARTY: "准许当事人入场",
        Action.SIDE_ROOM: "背靠背单独谈话",
        Action.RAISE_HAND: "举手",
        Action.START_RECORDING: "开始录制",
        Action.VIEW_CAMERAS: "调看监控",
    }
)

SESSION_KIND_NAMES_ZH: Mapping[SessionKind, str] = MappingProxyType(
    {
        SessionKind.JOINT: "联合会商",
        SessionKind.MEDIATION: "视频调解",
        SessionKind.LECTURE: "培训讲座",
    }
)


@dataclass(frozen=True, slots=True)
class Rule:
    """Conditions under which a role may do an action it is granted."""

    needs_floor: bool = False
    needs_admission: bool = False

    def permits(self, *, has_floor: bool, admitted: bool) -> bool:
        if self.needs_floor and not has_floor:
            return False
        return admitted or not self.needs_admission


ALWAYS = Rule()
WITH_FLOOR = Rule(needs_floor=True)
ONCE_ADMITTED = Rule(needs_admission=True)
ADMITTED_WITH_FLOOR = Rule(needs_floor=True, needs_admission=True)


def _grant(
    always: Iterable[Action] = (),
    with_floor: Iterable[Action] = (),
    once_admitted: Iterable[Action] = (),
    admitted_with_floor: Iterable[Action] = (),
) -> Mapping[Action, Rule]:
    rules: dict[Action, Rule] = {}
    for actions, rule in (
        (always, ALWAYS),
        (with_floor, WITH_FLOOR),
        (once_admitted, ONCE_ADMITTED),
        (admitted_with_floor, ADMITTED_WITH_FLOOR),
    ):
        for action in actions:
            if action in rules:
                raise ValueError(f"action {action!r} is granted twice to one role")
            rules[action] = rule
    return MappingProxyType(rules)


_MEDIA = (Action.PUBLISH_CAMERA, Action.PUBLISH_MICROPHONE, Action.SHARE_SCREEN)
_ROOM_CONTROL = (
    Action.MUTE_OTHERS,
    Action.REMOVE_PEER,
    Action.LOCK_ROOM,
    Action.GIVE_FLOOR,
    Action.START_RECORDING,
)
_NOTHING = _grant()
_SUBSCRIBE_ONLY = _grant(always=[Action.SUBSCRIBE])
# Viewers watch and chat, and speak or show anything only with the floor.
_VIEWER = _grant(
    always=[Action.SUBSCRIBE, Action.CHAT, Action.RAISE_HAND], with_floor=_MEDIA
)

# Joint command session: the chair runs it, the dispatcher works the command
# tools, member rooms report with their own media and camera feeds.
_JOINT_PARTICIPANT = _grant(
    always=[
        *_MEDIA,
        Action.SUBSCRIBE,
        Action.CHAT,
        Action.PUSH_CAMERA,
        Action.RAISE_HAND,
        Action.VIEW_CAMERAS,
    ]
)
_JOINT = {
    Role.CHAIR: _grant(
        always=[
            *_MEDIA,
            Action.SUBSCRIBE,
            Action.CHAT,
            *_ROOM_CONTROL,
            Action.PUSH_CAMERA,
            Action.ASSIGN_TASK,
            Action.ROLL_CALL,
            Action.VIEW_CAMERAS,
        ]
    ),
    Role.DISPATCHER: _grant(
        always=[
            *_MEDIA,
            Action.SUBSCRIBE,
            Action.CHAT,
            Action.PUSH_CAMERA,
            Action.ASSIGN_TASK,
            Action.ROLL_CALL,
            Action.RAISE_HAND,
            Action.VIEW_CAMERAS,
        ]
    ),
    Role.MEMBER: _JOINT_PARTICIPANT,
    Role.MEDIATOR: _JOINT_PARTICIPANT,
    Role.TRAINER: _JOINT_PARTICIPANT,
    Role.PARTY: _NOTHING,
    Role.VIEWER: _VIEWER,
    Role.OBSERVER: _SUBSCRIBE_ONLY,
}

# Mediation: the mediator (or the chair) hosts, admits parties from the waiting
# room and may take one party aside. Parties can neither watch nor speak before that.
_MEDIATION_HOST = _grant(
    always=[
        *_MEDIA,
        Action.SUBSCRIBE,
        Action.CHAT,
        *_ROOM_CONTROL,
        Action.ADMIT_PARTY,
        Action.SIDE_ROOM,
    ]
)
_MEDIATION_PARTICIPANT = _grant(
    always=[*_MEDIA, Action.SUBSCRIBE, Action.CHAT, Action.RAISE_HAND]
)
_MEDIATION = {
    Role.CHAIR: _MEDIATION_HOST,
    Role.MEDIATOR: _MEDIATION_HOST,
    Role.MEMBER: _MEDIATION_PARTICIPANT,
    Role.DISPATCHER: _MEDIATION_PARTICIPANT,
    Role.TRAINER: _MEDIATION_PARTICIPANT,
    Role.PARTY: _grant(
        once_admitted=[
            Action.PUBLISH_CAMERA,
            Action.PUBLISH_MICROPHONE,
            Action.SUBSCRIBE,
            Action.CHAT,
            Action.RAISE_HAND,
        ],
        admitted_with_floor=[Action.SHARE_SCREEN],
    ),
    Role.VIEWER: _VIEWER,
    Role.OBSERVER: _SUBSCRIBE_ONLY,
}

# Lecture: the trainer (or the chair) teaches. Member rooms keep their camera on
# so the trainer can check who attends, and speak or share only with the floor.
_LECTURE_HOST = _grant(
    always=[*_MEDIA, Action.SUBSCRIBE, Action.CHAT, *_ROOM_CONTROL, Action.ROLL_CALL]
)
_LECTURE_SITE = _grant(
    always=[Action.PUBLISH_CAMERA, Action.SUBSCRIBE, Action.CHAT, Action.RAISE_HAND],
    with_floor=[Action.PUBLISH_MICROPHONE, Action.SHARE_SCREEN],
)
_LECTURE = {
    Role.CHAIR: _LECTURE_HOST,
    Role.TRAINER: _LECTURE_HOST,
    Role.MEMBER: _LECTURE_SITE,
    Role.DISPATCHER: _LECTURE_SITE,
    Role.MEDIATOR: _LECTURE_SITE,
    Role.PARTY: _NOTHING,
    Role.VIEWER: _VIEWER,
    Role.OBSERVER: _SUBSCRIBE_ONLY,
}

PERMISSIONS: Mapping[SessionKind, Mapping[Role, Mapping[Action, Rule]]] = (
    MappingProxyType(
        {
            SessionKind.JOINT: MappingProxyType(_JOINT),
            SessionKind.MEDIATION: MappingProxyType(_MEDIATION),
            SessionKind.LECTURE: MappingProxyType(_LECTURE),
        }
    )
)
"""Granted actions per session kind and role; an action that is absent is denied."""

_E = TypeVar("_E", Role, Action, SessionKind)


def _parse(enum: type[_E], value: object, what: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        expected = ", ".join(member.value for member in enum)
        raise ProtocolError(
            f"unknown {what} {value!r}; expected one of: {expected}"
        ) from None


def parse_role(value: object) -> Role:
    """Return the Role named `value`, or raise ProtocolError listing the roles."""
    return _parse(Role, value, "role")


def parse_action(value: object) -> Action:
    """Return the Action named `value`, or raise ProtocolError listing them."""
    return _parse(Action, value, "action")


def parse_session_kind(value: object) -> SessionKind:
    """Return the SessionKind named `value`, or raise ProtocolError listing them."""
    return _parse(SessionKind, value, "session kind")


def rule_for(kind: str, role: str, action: str) -> Rule | None:
    """Return the rule granting `action` to `role` in `kind`, or None if denied.

    Raises ProtocolError for an unknown kind, role or action.
    """
    rules = PERMISSIONS[parse_session_kind(kind)][parse_role(role)]
    return rules.get(parse_action(action))


def is_allowed(
    kind: str,
    role: str,
    action: str,
    *,
    has_floor: bool = False,
    admitted: bool = True,
) -> bool:
    """Return whether `role` may do `action` in a `kind` session right now."""
    rule = rule_for(kind, role, action)
    return rule is not None and rule.permits(has_floor=has_floor, admitted=admitted)


def allowed_actions(
    kind: str,
    role: str,
    *,
    has_floor: bool = False,
    admitted: bool = True,
) -> frozenset[Action]:
    """Return every action `role` may do in a `kind` session right now.

    A client uses this to show only the controls that will work.
    """
    rules = PERMISSIONS[parse_session_kind(kind)][parse_role(role)]
    return frozenset(
        action
        for action, rule in rules.items()
        if rule.permits(has_floor=has_floor, admitted=admitted)
    )


def check(
    kind: str,
    role: str,
    action: str,
    *,
    has_floor: bool = False,
    admitted: bool = True,
) -> None:
    """Raise Forbidden unless `role` may do `action` in a `kind` session.

    `has_floor` is whether the host gave this participant the floor, and
    `admitted` whether a hearing party was let in from the waiting room. Both
    matter only for grants that name them. Raises ProtocolError for an unknown
    kind, role or action.
    """
    rule = rule_for(kind, role, action)
    if rule is not None and rule.permits(has_floor=has_floor, admitted=admitted):
        return

    session_kind = parse_session_kind(kind)
    role_value = parse_role(role)
    action_value = parse_action(action)
    denied = (
        f"role {role_value.value!r} may not {action_value.value} "
        f"in a {session_kind.value} session"
    )
    if rule is None:
        granted = [
            other.value
            for other, rules in PERMISSIONS[session_kind].items()
            if action_value in rules
        ]
        if granted:
            hint = f"roles that may: {', '.join(granted)}"
        else:
            hint = f"no role may do this in a {session_kind.value} session"
        raise Forbidden(f"{denied}; {hint}")
    if rule.needs_admission and not admitted:
        raise Forbidden(
            f"{denied} before being admitted; wait in the waiting room until "
            "the mediator admits you"
        )
    raise Forbidden(
        f"{denied} without the floor; raise a hand and wait for the host to "
        "give you the floor"
    )


def can_see_camera(org: Org, user_unit: str, camera_unit: str) -> bool:
    """Return whether a user of `user_unit` may see a camera of `camera_unit`.

    Users see the cameras of their own unit and of every unit below it, never
    those of the parent unit or of sibling units. Raises NotFound for an unknown unit.
    """
    return org.is_within(camera_unit, user_unit)
