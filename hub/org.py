"""The organisation tree: command-centre units, their levels and their rooms.

The tree is read from a TOML file (`org.file` in the configuration) with one
`[[units]]` table per unit:

    [[units]]
    id = "puer.simao"            # dotted path; the parent is "puer"
    name = "思茅区综治中心"
    level = "county"             # city, county or township
    rooms = [{ id = "simao-hall", name = "指挥大厅", kind = "joint" }]

A unit's parent is its id without the last segment, so ids alone define the
tree and units may be listed in any order. Rooms are the standing rooms a unit
owns; `kind` is the session kind the room runs by default ("joint" if absent).
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hub.config import ConfigError
from hub.errors import NotFound
from hub.roles import SessionKind

logger = logging.getLogger(__name__)

LEVELS: tuple[str, ...] = ("city", "county", "township")
"""Unit levels from the top down; a child's level must come after its parent's."""

LEVEL_NAMES_ZH: Mapping[str, str] = MappingProxyType(
    {
        "city": "市级",
        "county": "县级",
        "township": "乡镇（街道）级",
    }
)

MAX_NAME_LENGTH = 64
MAX_UNIT_ID_LENGTH = 128
_SEGMENT = r"[a-z0-9]+(?:[_-][a-z0-9]+)*"
_UNIT_ID_PATTERN = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
# Same rule as the `room` field of the signaling `join` message.
_ROOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_UNIT_KEYS = frozenset({"id", "name", "level", "rooms"})
_ROOM_KEYS = frozenset({"id", "name", "kind"})


class OrgError(ConfigError):
    """The organisation file is missing, unreadable or inconsistent."""


@dataclass(frozen=True, slots=True)
class Room:
    """A standing room owned by a unit, such as its 指挥大厅."""

    id: str
    name: str
    unit: str
    kind: SessionKind


@dataclass(frozen=True, slots=True)
class Unit:
    """One command-centre unit of the tree."""

    id: str
    name: str
    level: str
    parent: str | None
    rooms: tuple[Room, ...]
    children: tuple[str, ...]


class Org:
    """A validated organisation tree with lookups by unit and room id.

    Build one with `load_org` or `parse_org`. Lookups of an unknown id raise
    NotFound naming the id and the file the tree came from.
    """

    def __init__(self, units: Mapping[str, Unit], root: str, source: str) -> None:
        self._units = dict(units)
        self._root = root
        self._source = source
        self._rooms = {room.id: room for unit in units.values() for room in unit.rooms}

    @property
    def source(self) -> str:
        """File (or other origin) the tree was read from, for messages."""
        return self._source

    @property
    def root(self) -> Unit:
        return self._units[self._root]

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._units

    def __iter__(self) -> Iterator[Unit]:
        """Iterate over all units, each parent before its children."""
        yield self.root
        yield from self.descendants(self._root)

    def unit(self, unit_id: str) -> Unit:
        """Return the unit with this id, or raise NotFound."""
        try:
            return self._units[unit_id]
        except (KeyError, TypeError):
            raise NotFound(
                f"unit {unit_id!r} not found in the org tree {self._source}; "
                "use a unit id listed in that file"
            ) from None

    def children(self, unit_id: str) -> list[Unit]:
        """Return the units directly below this unit, in file order."""
        return [self._units[child] for child in self.unit(unit_id).children]

    def ancestors(self, unit_id: str) -> list[Unit]:
        """Return the units above this unit, its parent first and the root last."""
        found = []
        parent = self.unit(unit_id).parent
        while parent is not None:
            unit = self._units[parent]
            found.append(unit)
            parent = unit.parent
        return found

    def descendants(self, unit_id: str) -> list[Unit]:
        """Return every unit below this unit, depth first, without the unit itself."""
        found = []
        pending = list(reversed(self.unit(unit_id).children))
        while pending:
            unit = self._units[pending.pop()]
            found.append(unit)
            pending.extend(reversed(unit.children))
        return found

    def is_within(self, unit_id: str, ancestor_id: str) -> bool:
        """Return whether `unit_id` is `ancestor_id` or a unit below it.

        Raises NotFound if either id is unknown.
        """
        self.unit(ancestor_id)
        current: str | None = self.unit(unit_id).id
        while current is not None:
            if current == ancestor_id:
                return True
            current = self._units[current].parent
        return False

    def rooms(self, unit_id: str) -> tuple[Room, ...]:
        """Return the rooms this unit owns (not those of units below it)."""
        return self.unit(unit_id).rooms

    def all_rooms(self) -> list[Room]:
        """Return the rooms of every unit, in tree order."""
        return [room for unit in self for room in unit.rooms]

    def room(self, room_id: str) -> Room:
        """Return the room with this id, or raise NotFound."""
        try:
            return self._rooms[room_id]
        except (KeyError, TypeError):
            raise NotFound(
                f"room {room_id!r} not found in the org tree {self._source}; "
                "use a room id listed under a unit's rooms in that file"
            ) from None

    def unit_of_room(self, room_id: str) -> Unit:
        """Return the unit that owns this room, or raise NotFound."""
        return self._units[self.room(room_id).unit]


def load_org(path: str | Path) -> Org:
    """Read and validate the organisation file at `path`.

    Raises OrgError (a ConfigError, so a ValueError) naming the file, the unit
    and the problem.
    """
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OrgError(
            f"org file {str(file_path)!r} not found; set org.file in the "
            "configuration to an existing file"
        ) from None
    except OSError as exc:
        raise OrgError(f"org file {str(file_path)!r} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OrgError(
            f"org file {str(file_path)!r} is not valid TOML: {exc}"
        ) from None
    org = parse_org(data, source=str(file_path))
    logger.info(
        "loaded org tree file=%s units=%d rooms=%d root=%s",
        file_path,
        len(org),
        len(org.all_rooms()),
        org.root.id,
    )
    return org


def parse_org(data: Mapping[str, Any], source: str = "<org data>") -> Org:
    """Validate parsed TOML data of an organisation file and build the tree.

    `source` names the origin in error messages. Raises OrgError.
    """
    if not isinstance(data, Mapping):
        raise OrgError(f"{source}: expected a table with 'units', got {data!r}")
    unknown = set(data) - {"units"}
    if unknown:
        raise OrgError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; "
            "the file holds only [[units]] tables"
        )
    entries = data.get("units")
    if not isinstance(entries, list) or not entries:
        raise OrgError(f"{source}: no units; add at least one [[units]] table")

    # First pass: each entry on its own.
    units: dict[str, dict[str, Any]] = {}
    positions: dict[str, int] = {}
    room_owners: dict[str, str] = {}
    for position, entry in enumerate(entries, start=1):
        fields = _parse_unit_fields(entry, position, source)
        unit_id = fields["id"]
        if unit_id in units:
            raise OrgError(
                f"{source}: unit {unit_id!r} is defined twice (units #"
                f"{positions[unit_id]} and #{position}); give each unit its own id"
            )
        for room in fields["rooms"]:
            if room.id in room_owners:
                raise OrgError(
                    f"{source}: unit {unit_id!r}: room id {room.id!r} is already "
                    f"used by unit {room_owners[room.id]!r}; room ids must be "
                    "unique across the whole tree"
                )
            room_owners[room.id] = unit_id
        units[unit_id] = fields
        positions[unit_id] = position

    # Second pass: links between units.
    roots = [unit_id for unit_id in units if "." not in unit_id]
    children: dict[str, list[str]] = {unit_id: [] for unit_id in units}
    for unit_id, fields in units.items():
        if "." not in unit_id:
            continue
        parent_id = unit_id.rsplit(".", 1)[0]
        if parent_id not in units:
            raise OrgError(
                f"{source}: unit {unit_id!r}: parent unit {parent_id!r} is not "
                "defined; add it or correct the id (a unit's parent is its id "
                "without the last dotted segment)"
            )
        parent_level = units[parent_id]["level"]
        if LEVELS.index(fields["level"]) <= LEVELS.index(parent_level):
            raise OrgError(
                f"{source}: unit {unit_id!r}: level {fields['level']!r} is not "
                f"below the level {parent_level!r} of its parent {parent_id!r}; "
                f"levels from the top down are {', '.join(LEVELS)}"
            )
        children[parent_id].append(unit_id)
    if len(roots) != 1:
        raise OrgError(
            f"{source}: expected exactly one top unit (an id without a dot), "
            f"found {len(roots)}: {', '.join(roots)}; put them under one common "
            "parent unit"
        )

    built = {
        unit_id: Unit(
            id=unit_id,
            name=fields["name"],
            level=fields["level"],
            parent=unit_id.rsplit(".", 1)[0] if "." in unit_id else None,
            rooms=fields["rooms"],
            children=tuple(children[unit_id]),
        )
        for unit_id, fields in units.items()
    }
    return Org(built, roots[0], source)


def _parse_unit_fields(entry: object, position: int, source: str) -> dict[str, Any]:
    where = f"{source}: units #{position}"
    if not isinstance(entry, Mapping):
        raise OrgError(f"{where}: expected a table, got {entry!r}")

    unit_id = entry.get("id")
    if not isinstance(unit_id, str) or not unit_id:
        raise OrgError(f"{where}: missing string field 'id'; add id = \"...\"")
    if len(unit_id) > MAX_UNIT_ID_LENGTH or not _UNIT_ID_PATTERN.fullmatch(unit_id):
        raise OrgError(
            f"{where}: invalid unit id {unit_id!r}; use lowercase ASCII segments "
            "(letters, digits, '-' or '_') joined by dots, such as "
            f"'puer.simao.nanping', at most {MAX_UNIT_ID_LENGTH} characters"
        )
    where = f"{source}: unit {unit_id!r}"

    unknown = set(entry) - _UNIT_KEYS
    if unknown:
        raise OrgError(
            f"{where}: unknown field(s) {sorted(unknown)}; "
            f"expected: {', '.join(sorted(_UNIT_KEYS))}"
        )
    name = _parse_name(entry.get("name"), f"{where}: field 'name'")
    level = entry.get("level")
    if level is None:
        raise OrgError(
            f"{where}: missing field 'level'; use one of: {', '.join(LEVELS)}"
        )
    if level not in LEVELS:
        raise OrgError(
            f"{where}: unknown level {level!r}; use one of: {', '.join(LEVELS)}"
        )

    raw_rooms = entry.get("rooms", [])
    if not isinstance(raw_rooms, list):
        raise OrgError(f"{where}: field 'rooms' must be a list, got {raw_rooms!r}")
    rooms = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rooms):
        room = _parse_room(raw, unit_id, f"{where}: rooms[{index}]")
        if room.id in seen:
            raise OrgError(
                f"{where}: room id {room.id!r} is listed twice; give each room "
                "its own id"
            )
        seen.add(room.id)
        rooms.append(room)
    return {"id": unit_id, "name": name, "level": level, "rooms": tuple(rooms)}


def _parse_room(raw: object, unit_id: str, where: str) -> Room:
    if not isinstance(raw, Mapping):
        raise OrgError(f"{where}: expected a table with id and name, got {raw!r}")
    unknown = set(raw) - _ROOM_KEYS
    if unknown:
        raise OrgError(
            f"{where}: unknown field(s) {sorted(unknown)}; "
            f"expected: {', '.join(sorted(_ROOM_KEYS))}"
        )
    room_id = raw.get("id")
    if not isinstance(room_id, str) or not _ROOM_ID_PATTERN.fullmatch(room_id):
        raise OrgError(
            f"{where}: invalid room id {room_id!r}; use 1 to 64 ASCII letters, "
            "digits, '-', '_' or '.'"
        )
    name = _parse_name(raw.get("name"), f"{where}: field 'name'")
    kind = raw.get("kind", SessionKind.JOINT.value)
    try:
        session_kind = SessionKind(kind)
    except ValueError:
        expected = ", ".join(member.value for member in SessionKind)
        raise OrgError(
            f"{where}: room {room_id!r}: unknown session kind {kind!r}; "
            f"use one of: {expected}"
        ) from None
    return Room(id=room_id, name=name, unit=unit_id, kind=session_kind)


def _parse_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OrgError(f"{where} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise OrgError(
            f"{where} has {len(value)} characters; shorten it to at most "
            f"{MAX_NAME_LENGTH}"
        )
    return value.strip()
