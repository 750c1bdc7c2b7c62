"""Step timings of viewers, in milliseconds after each viewer's start, and
their min / median / max, for the camera and first-frame results pages."""

from __future__ import annotations

import statistics
from typing import Any

# The steps of a viewer's way to its first picture, in the order they
# happen. `offer` is when a hub offer arrived; Janus clients record only
# `offer_applied` (after aiortc applied the offer).
STEPS = (
    "push_returned",
    "joined",
    "offer",
    "answer_sent",
    "ice_connected",
    "connected",
    "first_packet",
    "keyframe_start",
    "keyframe_complete",
    "decoded",
)
STEP_TITLES = {
    "push_returned": "push sent -> camera online, push returned",
    "joined": "join sent -> joined",
    "offer": "-> down offer",
    "answer_sent": "-> answer sent",
    "ice_connected": "-> ICE connected",
    "connected": "-> DTLS connected",
    "first_packet": "-> first video packet",
    "keyframe_start": "-> first packet of the first keyframe",
    "keyframe_complete": "-> keyframe complete",
    "decoded": "-> first picture decoded",
}

# Column titles for the time of each step after the start.
STEP_NAMES = {
    "push_returned": "push returned",
    "joined": "joined",
    "offer": "down offer",
    "answer_sent": "answer sent",
    "ice_connected": "ICE connected",
    "connected": "DTLS connected",
    "first_packet": "first video packet",
    "keyframe_start": "first keyframe starts",
    "keyframe_complete": "keyframe complete",
    "decoded": "picture decoded",
}


def milliseconds(
    times: dict[str, float], start: float, skip: tuple[str, ...] = ()
) -> dict[str, float]:
    """Return each step's time in ms after `start`, for the steps in `times`
    except those in `skip` (steps that happened before `start`)."""
    offsets = {}
    for step in STEPS:
        if step in skip:
            continue
        value = times.get(step)
        if step == "offer" and value is None:
            value = times.get("offer_applied")
        if value is not None:
            offsets[step] = round(1000 * (value - start), 1)
    return offsets


def increments(offsets: dict[str, float]) -> dict[str, float]:
    """Return the ms each step took after the step before it that happened."""
    previous = 0.0
    result = {}
    for step in STEPS:
        if step in offsets:
            result[step] = round(offsets[step] - previous, 1)
            previous = offsets[step]
    return result


def spread(values: list[float]) -> dict[str, float] | None:
    """Return min, median and max of `values`, or None when there are none."""
    if not values:
        return None
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "count": len(values),
    }


def spread_text(
    item: dict[str, float] | None, unit: str = "ms", digits: int = 0
) -> str:
    if item is None:
        return "-"
    values = [f"{item[key]:.{digits}f}" for key in ("min", "median", "max")]
    return " / ".join(values) + f" {unit}"


def step_table(records: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: each step's increment, min / median / max over viewers."""
    lines = [
        "| step | min / median / max |",
        "|---|---|",
    ]
    for step in STEPS:
        values = [
            r["increments"][step] for r in records if step in r.get("increments", {})
        ]
        if values:
            lines.append(f"| {STEP_TITLES[step]} | {spread_text(spread(values))} |")
    return lines
