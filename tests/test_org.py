"""Organisation tree: the 普洱市 sample file, lookups, and validation errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.config import ConfigError
from hub.errors import NotFound
from hub.org import LEVELS, OrgError, load_org, parse_org
from hub.roles import SessionKind

ORG_FILE = Path(__file__).resolve().parent.parent / "configs" / "org-puer.toml"

COUNTY_NAMES = [
    "思茅区",
    "宁洱哈尼族彝族自治县",
    "墨江哈尼族自治县",
    "景东彝族自治县",
    "景谷傣族彝族自治县",
    "镇沅彝族哈尼族拉祜族自治县",
    "江城哈尼族彝族自治县",
    "孟连傣族拉祜族佤族自治县",
    "澜沧拉祜族自治县",
    "西盟佤族自治县",
]


@pytest.fixture(scope="module")
def org():
    return load_org(ORG_FILE)


def test_sample_root_is_city_centre(org):
    assert org.root.id == "puer"
    assert org.root.name == "普洱市综治中心"
    assert org.root.level == "city"
    assert org.root.parent is None


def test_sample_lists_district_and_counties(org):
    counties = org.children("puer")

    assert [unit.name for unit in counties] == [f"{n}综治中心" for n in COUNTY_NAMES]
    assert {unit.level for unit in counties} == {"county"}
    assert all(unit.id.startswith("puer.") for unit in counties)


def test_sample_simao_townships(org):
    names = [unit.name for unit in org.children("puer.simao")]

    assert names == [
        "思茅街道综治中心",
        "南屏镇综治中心",
        "倚象镇综治中心",
        "思茅港镇综治中心",
        "六顺镇综治中心",
        "龙潭彝族傣族乡综治中心",
        "云仙彝族乡综治中心",
    ]


def test_sample_ninger_townships(org):
    names = {unit.name for unit in org.children("puer.ninger")}

    assert {"宁洱镇综治中心", "磨黑镇综治中心", "同心镇综治中心"} <= names
    assert len(names) == 9


def test_sample_every_unit_has_a_room(org):
    for unit in org:
        assert unit.rooms, unit.id
        for room in unit.rooms:
            assert room.unit == unit.id
            assert isinstance(room.kind, SessionKind)


def test_sample_city_rooms(org):
    rooms = {room.id: (room.name, room.kind) for room in org.rooms("puer")}

    assert rooms["puer-hall"] == ("指挥大厅", SessionKind.JOINT)
    assert rooms["puer-mediation"][1] == SessionKind.MEDIATION
    assert rooms["puer-training"][1] == SessionKind.LECTURE


def test_ancestors_parent_first(org):
    ancestors = org.ancestors("puer.simao.nanping")

    assert [unit.id for unit in ancestors] == ["puer.simao", "puer"]
    assert org.ancestors("puer") == []


def test_descendants_depth_first(org):
    below_simao = [unit.id for unit in org.descendants("puer.simao")]
    below_city = [unit.id for unit in org.descendants("puer")]

    assert below_simao[0] == "puer.simao.simao"
    assert "puer.simao.nanping" in below_simao
    assert len(below_simao) == 7
    assert "puer.simao" not in below_simao
    assert len(below_city) == len(org) - 1
    # Depth first: every township directly follows its county or a sibling.
    assert below_city.index("puer.simao.yunxian") < below_city.index("puer.ninger")


def test_iteration_puts_parents_first(org):
    seen: set[str] = set()
    for unit in org:
        if unit.parent is not None:
            assert unit.parent in seen, unit.id
        seen.add(unit.id)

    assert len(seen) == len(org)


@pytest.mark.parametrize(
    ("unit", "ancestor", "expected"),
    [
        ("puer.simao.nanping", "puer.simao", True),
        ("puer.simao.nanping", "puer", True),
        ("puer.simao", "puer.simao", True),
        ("puer.simao", "puer.simao.nanping", False),
        ("puer.ninger.mohei", "puer.simao", False),
        ("puer", "puer.simao", False),
    ],
)
def test_is_within(org, unit, ancestor, expected):
    assert org.is_within(unit, ancestor) is expected


def test_room_lookup(org):
    room = org.room("simao-nanping-hall")

    assert room.name == "指挥室"
    assert org.unit_of_room("simao-nanping-hall").name == "南屏镇综治中心"
    assert org.unit_of_room("ninger-hall").id == "puer.ninger"


@pytest.mark.parametrize(
    "lookup",
    [
        lambda org: org.unit("puer.nowhere"),
        lambda org: org.ancestors("puer.nowhere"),
        lambda org: org.descendants("puer.nowhere"),
        lambda org: org.rooms("puer.nowhere"),
        lambda org: org.is_within("puer.nowhere", "puer"),
        lambda org: org.is_within("puer", "puer.nowhere"),
    ],
)
def test_unknown_unit_not_found(org, lookup):
    with pytest.raises(NotFound) as caught:
        lookup(org)

    assert caught.value.code == "not-found"
    assert "unit 'puer.nowhere' not found" in caught.value.message
    assert str(ORG_FILE) in caught.value.message


def test_unknown_room_not_found(org):
    with pytest.raises(NotFound) as caught:
        org.unit_of_room("moon-hall")

    assert "room 'moon-hall' not found" in caught.value.message


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


CITY = """
[[units]]
id = "puer"
name = "普洱市综治中心"
level = "city"
rooms = [{ id = "puer-hall", name = "指挥大厅" }]
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            CITY
            + """
            [[units]]
            id = "puer"
            name = "重复"
            level = "city"
            """,
            "unit 'puer' is defined twice (units #1 and #2)",
        ),
        (
            CITY
            + """
            [[units]]
            id = "puer.simao"
            name = "思茅区综治中心"
            level = "district"
            """,
            "unit 'puer.simao': unknown level 'district'; use one of: "
            "city, county, township",
        ),
        (
            CITY
            + """
            [[units]]
            id = "puer.simao"
            name = "思茅区综治中心"
            """,
            "unit 'puer.simao': missing field 'level'",
        ),
        (
            CITY
            + """
            [[units]]
            id = "puer.simao"
            name = "思茅区综治中心"
            level = "city"
            """,
            "unit 'puer.simao': level 'city' is not below the level 'city' of "
            "its parent 'puer'",
        ),
        (
            CITY
            + """
            [[units]]
            id = "puer.simao.nanping"
            name = "南屏镇综治中心"
            level = "township"
            """,
            "unit 'puer.simao.nanping': parent unit 'puer.simao' is not defined",
        ),
        (
            CITY
            + """
            [[units]]
            id = "kunming"
            name = "昆明市综治中心"
            level = "city"
            """,
            "expected exactly one top unit (an id without a dot), found 2: "
            "puer, kunming",
        ),
        (
            CITY
            + """
            [[units]]
            id = "puer.simao"
            name = "思茅区综治中心"
            level = "county"
            rooms = [{ id = "puer-hall", name = "指挥大厅" }]
            """,
            "unit 'puer.simao': room id 'puer-hall' is already used by unit 'puer'",
        ),
        (
            """
            [[units]]
            id = "puer"
            name = "普洱市综治中心"
            level = "city"
            rooms = [{ id = "puer-hall", name = "指挥大厅", kind = "party" }]
            """,
            "room 'puer-hall': unknown session kind 'party'",
        ),
        (
            """
            [[units]]
            id = "puer"
            name = "普洱市综治中心"
            level = "city"
            rooms = [{ id = "puer hall", name = "指挥大厅" }]
            """,
            "invalid room id 'puer hall'",
        ),
        (
            """
            [[units]]
            id = "Puer/City"
            name = "普洱市综治中心"
            level = "city"
            """,
            "invalid unit id 'Puer/City'",
        ),
        (
            """
            [[units]]
            id = "puer"
            name = "普洱市综治中心"
            level = "city"
            phone = "0879"
            """,
            "unit 'puer': unknown field(s) ['phone']",
        ),
        (
            """
            [[units]]
            id = "puer"
            name = ""
            level = "city"
            """,
            "unit 'puer': field 'name' must be a non-empty string",
        ),
        ("", "no units; add at least one [[units]] table"),
        ("[[units]\n", "is not valid TOML"),
    ],
    ids=[
        "duplicate-id",
        "unknown-level",
        "missing-level",
        "level-not-below-parent",
        "missing-parent",
        "two-roots",
        "duplicate-room",
        "unknown-room-kind",
        "bad-room-id",
        "bad-unit-id",
        "unknown-field",
        "empty-name",
        "no-units",
        "bad-toml",
    ],
)
def test_invalid_file_rejected(tmp_path, body, expected):
    path = _write(tmp_path, body)

    with pytest.raises(OrgError) as caught:
        load_org(path)

    assert expected in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, ValueError)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(OrgError) as caught:
        load_org(tmp_path / "absent.toml")

    assert "absent.toml' not found" in str(caught.value)
    assert "org.file" in str(caught.value)


def test_units_in_any_order(tmp_path):
    path = _write(
        tmp_path,
        """
        [[units]]
        id = "puer.simao.nanping"
        name = "南屏镇综治中心"
        level = "township"

        [[units]]
        id = "puer.simao"
        name = "思茅区综治中心"
        level = "county"

        [[units]]
        id = "puer"
        name = "普洱市综治中心"
        level = "city"
        """,
    )

    org = load_org(path)

    assert [unit.id for unit in org] == ["puer", "puer.simao", "puer.simao.nanping"]
    assert org.rooms("puer") == ()


def test_level_may_skip_one():
    org = parse_org(
        {
            "units": [
                {"id": "puer", "name": "普洱市综治中心", "level": "city"},
                {"id": "puer.x", "name": "直属乡镇", "level": "township"},
            ]
        }
    )

    assert org.unit("puer.x").parent == "puer"
    assert LEVELS.index(org.unit("puer.x").level) == 2
