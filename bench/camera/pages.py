"""Render the camera and first-frame benchmarks' JSON results as Markdown."""

from __future__ import annotations

from typing import Any

from camera import summary

# "A new subscriber sees a picture within a second."
TARGET_MS = 1000.0

SOURCE_TITLES = {
    "encoder": "publisher encodes live and answers keyframe requests (as a browser)",
    "clip": "publisher sends the pre-encoded clip, keyframe every 2 s, ignores "
    "keyframe requests",
}
RELAY_TITLES = {
    "hub": "hub (`hub serve`)",
    "janus": "Janus VideoRoom 1.1.2",
}


def machine_lines(machine: dict[str, str]) -> list[str]:
    return [
        f"- Cores (`nproc`): {machine['nproc']}; CPU (`lscpu` model name): "
        f"{machine['cpu_model']}; memory {machine['memory']}; kernel "
        f"{machine['kernel']}.",
        f"- Python {machine['python']}, aiortc {machine['aiortc']}, PyAV "
        f"{machine['av']}, aioice {machine['aioice']}, Janus {machine['janus']} "
        "(Debian).",
        f"- Load average when the run started (1, 5, 15 min): "
        f"{machine['load_average']}; date {machine['date']}.",
    ]


def _decoded(subscribers: list[dict[str, Any]]) -> list[float]:
    return [
        s["offsets"]["decoded"]
        for s in subscribers
        if "decoded" in s.get("offsets", {})
    ]


def _verdict(case: dict[str, Any], k: int) -> str:
    times = _decoded(case["subscribers"])
    if case["status"] != "ok":
        return f"no verdict: the case {case['status']} ({case['error']})"
    over = [t for t in times if t > TARGET_MS]
    missing = k - len(times)
    if not over and not missing:
        return f"met: all {k} subscribers decoded a picture within 1 s"
    parts = []
    if over:
        parts.append(f"{len(over)} of {k} subscribers took over 1 s")
    if missing:
        parts.append(f"{missing} of {k} decoded no picture")
    return "not met: " + ", ".join(parts)


def _subscriber_table(case: dict[str, Any]) -> list[str]:
    steps = [
        step
        for step in summary.STEPS
        if any(step in s.get("offsets", {}) for s in case["subscribers"])
    ]
    header = "| subscriber | " + " | ".join(summary.STEP_NAMES[s] for s in steps)
    header += " | keyframe request reached the publisher |"
    lines = [header, "|---" * (len(steps) + 2) + "|"]
    for subscriber in case["subscribers"]:
        offsets = subscriber.get("offsets", {})
        cells = [f"{offsets[s]:.0f}" if s in offsets else "-" for s in steps]
        request = subscriber.get("keyframe_request_ms")
        cells.append("-" if request is None else f"{request:.0f}")
        name = str(subscriber["index"])
        if subscriber.get("error"):
            name += f" ({subscriber['error']})"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_first_frame(data: dict[str, Any]) -> str:
    args = data["args"]
    k = args["k"]
    out = [
        "# First-frame benchmark: how soon a new conference subscriber sees video",
        "",
        "One aiortc publisher sends a 1280x720 VP8 stream at 30 fps into a room "
        "(the pictures of the benchmark clip of `bench/sfu/source.py`). Then "
        f"{k} aiortc subscribers join one after another, {args['gap']} s apart "
        "(start to start), and stay. Each subscriber times its own steps, in "
        "milliseconds after it sent `join` (hub) or its first request (Janus: "
        "attach, then join as subscriber): joined, down offer, answer sent, "
        "ICE connected, DTLS connected, first video packet, first packet of "
        "the first keyframe, that keyframe complete, and its first picture "
        "decoded with FFmpeg's VP8 decoder (PyAV). The subscriber decodes only "
        "up to that picture, inline in its receive path. The publisher "
        "records when the relay's keyframe requests (PLI or FIR) reach it. "
        "All processes read one clock (`time.monotonic()`), so times of "
        "different processes compare.",
        "",
        "Two publishers: `encoder` decodes the clip and encodes it live with "
        "aiortc's VP8 encoder at a fixed 1.2 Mbit/s (REMB ignored), making a "
        "keyframe only at the start and when asked, as a browser does. `clip` "
        "sends the pre-encoded clip as it is, with a keyframe every 2 s: "
        "aiortc 1.16 packs pre-encoded frames without an encoder, so it "
        "cannot answer a keyframe request, and a subscriber waits for the "
        "clip's next keyframe, 0 to 2 s.",
        "",
        "## Machine and command",
        "",
        *machine_lines(data["machine"]),
        f"- Command: `{data['command']}` (took {data.get('elapsed_seconds', '?')} "
        f"s); hub {data['hub_source']}.",
    ]
    if data.get("note"):
        out.append(f"- {data['note']}")
    out += [
        "",
        "## Target: a new subscriber sees a picture within a second",
        "",
        "| relay | publisher | join -> first picture, min / median / max | "
        "verdict | age of the first picture, min / median / max | 1-min load "
        "average at start |",
        "|---|---|---|---|---|---|",
    ]
    for case in data["cases"]:
        times = summary.spread(_decoded(case["subscribers"]))
        ages = [
            s["picture_age"]
            for s in case["subscribers"]
            if s.get("picture_age") is not None
        ]
        out.append(
            f"| {RELAY_TITLES.get(case['relay'], case['relay'])} | {case['source']} "
            f"| {summary.spread_text(times)} | {_verdict(case, k)} "
            f"| {summary.spread_text(summary.spread(ages), 's', 2)} "
            f"| {case.get('load_average', '-')} |"
        )
    out += [
        "",
        "The age of the first picture is how far behind the live stream it "
        "was: the span of RTP timestamps from that picture to the newest "
        "packet the subscriber had 0.5 s later, less 0.5 s.",
    ]
    for case in data["cases"]:
        out += [
            "",
            f"## {RELAY_TITLES.get(case['relay'], case['relay'])}, "
            f"{SOURCE_TITLES.get(case['source'], case['source'])}",
            "",
        ]
        if case["status"] != "ok":
            out += [f"{case['status']}: {case['error']}", ""]
        if not case["subscribers"]:
            continue
        out += ["Each step's duration over the subscribers:", ""]
        out += summary.step_table(case["subscribers"])
        out += [
            "",
            "Per subscriber, ms after its start (join sent, or Janus attach):",
            "",
        ]
        out += _subscriber_table(case)
    out.append("")
    return "\n".join(out)


# The camera clip served by tests/rtsp_server.py: 132 frames at 25 fps with
# one IDR picture, looped, so a keyframe comes every 5.28 s.
CAMERA_CLIP = (
    "tests/data/bigbuckbunny.mp4: 1280x720 H.264 Main (profile-level-id "
    "4d401f), 25 fps, no B-frames, 132 frames with one IDR picture at the "
    "start, about 1.2 Mbit/s"
)
CAMERA_KEYFRAME_INTERVAL = 132 / 25


def _warm_decoded(result: dict[str, Any]) -> list[float]:
    return _decoded(result.get("warm", []))


def _skipped(records: list[dict[str, Any]]) -> list[int]:
    return [
        r["hub"].get("skipped_waiting_keyframe", 0) for r in records if r.get("hub")
    ]


def _camera_load_rows(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| open | N | hub CPU, % of one core | camera packets/s into the hub "
        "| keyframes in the window | received / camera packets per viewer, "
        "min - max | hub sent / received per viewer, min - max | lost packets, "
        "all viewers (before the window; of those, dropped by the kernel on "
        "the viewers' full sockets) | hub drops (backlog) | kernel UDP "
        "drops | frames/s per viewer, min | machine busy, % of 200 | 1-min load "
        "average at start |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["status"] != "ok" or "window_seconds" not in r:
            lines.append(
                f"| {r['mode']} | {r['n']} | {r['status']}: {r['error']} "
                "| | | | | | | | | | |"
            )
            continue
        window = r["window_seconds"]
        camera = r["camera_packets"]
        viewers = r["viewers"]
        ratios = [v["packets"] / camera for v in viewers] if camera else [0.0]
        sent = [
            v["hub_sent"] / v["packets"]
            for v in viewers
            if v["hub_sent"] is not None and v["packets"]
        ] or [0.0]
        fps = [v["frames"] / window for v in viewers] or [0.0]
        lost = sum(v["lost"] for v in viewers)
        lost_before = sum(v.get("lost_before_window", 0) for v in viewers)
        socket_drops = r.get("viewer_socket_drops_before_window", "-")
        drops = sum(v.get("hub_drops") or 0 for v in viewers)
        lines.append(
            f"| {r['mode']} | {r['n']} | **{r['hub_cpu_percent']:.1f}** "
            f"| {camera / window:.0f} | {r['camera_keyframes']} "
            f"| {min(ratios):.3f} - {max(ratios):.3f} "
            f"| {min(sent):.3f} - {max(sent):.3f} "
            f"| {lost} ({lost_before}; {socket_drops}) "
            f"| {drops} "
            f"| {r['udp_drops']} | {min(fps):.1f} | {r['machine_busy_percent']:.0f} "
            f"| {r['load_average']} |"
        )
    return lines


def _camera_intro(args: dict[str, Any]) -> list[str]:
    return [
        "# Camera benchmark: one RTSP camera to N viewers through the hub",
        "",
        "GStreamer's RTSP server (`tests/rtsp_server.py`, run by the system "
        f"Python) loops the clip {CAMERA_CLIP}. Looped, the clip has a "
        f"keyframe every {CAMERA_KEYFRAME_INTERVAL:.2f} s; real cameras "
        'send one every 1 to 4 s, and longer with "smart" codecs. '
        "`hub serve` reads it over RTSP (TCP), packetizes it without "
        "decoding, and forwards it to aiortc viewers on loopback. For each N "
        "a fresh hub starts with the camera in its camera list, and a "
        "participant that receives nothing keeps the room open. The viewers "
        "run in one separate process: each counts its packets without "
        "decoding, except that it reassembles H.264 access units from its "
        "first packets and decodes them with FFmpeg (PyAV) until the first "
        "picture comes out.",
        "",
        "- Camera not running (cold): viewer 0 is in the room (`subscribe: "
        '"all"`) when `POST /api/rooms/bench/cameras` pushes the camera; its '
        "time runs from that request, which opens the RTSP session, to its "
        "first picture. It then leaves.",
        f"- Camera running (warm): N viewers open the feed {args['stagger']} s "
        "apart. `join`: the viewer joins the room where the camera is shown, "
        "timed from sending `join`. `subscribe`: the viewer joined earlier "
        'with `subscribe: "none"` and requests the camera track, timed from '
        "sending `subscribe`. Either way its down connection is new, so ICE "
        "and DTLS are part of the time.",
        f"- Then, with the N viewers receiving, a {args['window']:.0f} s window "
        f"starting {args['settle']:.0f} s after the last first picture: hub "
        "CPU (user + system of its process tree from `/proc/<pid>/stat`, % of "
        "one core), the camera's packets into the hub and the hub's packets "
        "sent per viewer (`/api/stats`), each viewer's packets received and "
        "lost (gaps in sequence numbers), and the kernel's UDP drops on full "
        "socket buffers (`/proc/net/snmp`). Lost packets before the window "
        "are the gaps each viewer had from its first packet to the window, "
        "replay burst included. The hub's counters are read a "
        "few milliseconds after the viewers', so a keyframe's burst of about "
        "90 packets can fall between the two readings and shift a ratio by "
        "up to 0.03; lost packets (sequence gaps) do not depend on the "
        "timing.",
    ]


def _first_picture_rows(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| open | N | cold: push -> first picture (push request returned); "
        "age of the picture | "
        "warm: open -> first picture, min / median / max | warm: age of the "
        "first picture, min / median / max | warm viewers that waited for the "
        "camera's next keyframe | warm: cached packets replayed, min - max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cold = r.get("cold") or {}
        offsets = cold.get("offsets", {})
        cold_text = "-"
        if "decoded" in offsets:
            returned = offsets.get("push_returned", 0)
            cold_text = f"{offsets['decoded']:.0f} ms ({returned:.0f} ms)"
            if cold.get("picture_age") is not None:
                cold_text += f"; age {cold['picture_age']:.2f} s"

        warm = r.get("warm", [])
        waited = sum(1 for s in _skipped(warm) if s > 0)
        ages = [w["picture_age"] for w in warm if w.get("picture_age") is not None]
        replayed = [
            w["hub"]["replayed"] for w in warm if "replayed" in w.get("hub", {})
        ]
        replayed_text = f"{min(replayed)} - {max(replayed)}" if replayed else "-"
        lines.append(
            f"| {r['mode']} | {r['n']} | {cold_text} "
            f"| {summary.spread_text(summary.spread(_warm_decoded(r)))} "
            f"| {summary.spread_text(summary.spread(ages), 's', 2)} "
            f"| {waited} of {len(warm)} | {replayed_text} |"
        )
    return lines


def _warm_time_lists(results: list[dict[str, Any]]) -> list[str]:
    lines = ["Warm viewers' times to the first picture, in opening order, ms:", ""]
    for r in results:
        times = [
            f"{w['offsets']['decoded']:.0f}"
            if "decoded" in w.get("offsets", {})
            else "none"
            for w in r.get("warm", [])
        ]
        if times:
            lines.append(f"- open {r['mode']}, N={r['n']}: {', '.join(times)}")
    return lines


def render_camera(data: dict[str, Any]) -> str:
    args = data["args"]
    results = data["results"]
    out = [
        *_camera_intro(args),
        "",
        "## Machine and command",
        "",
        *machine_lines(data["machine"]),
        f"- Command: `{data['command']}` (took {data.get('elapsed_seconds', '?')} "
        f"s); hub {data['hub_source']}.",
    ]
    if data.get("note"):
        out.append(f"- {data['note']}")

    out += [
        "",
        "## Time to the first picture",
        "",
        *_first_picture_rows(results),
        "",
        *_warm_time_lists(results),
        "",
        "The age of the first picture is how far behind the live stream it "
        "was: the span of RTP timestamps from that picture to the newest "
        "packet the viewer had 0.5 s later, less 0.5 s. A viewer that starts "
        "from the packets cached since the camera's last keyframe first "
        "decodes that keyframe, so its first picture is as old as the cache, "
        f"0 to {CAMERA_KEYFRAME_INTERVAL:.2f} s here, and the rest of the "
        "cache reaches it as one burst. These viewers do not play video, so "
        "what a browser shows during the burst is not measured here. A viewer "
        "\"waited for the camera's next keyframe\" when the hub's down track "
        "skipped packets before its first one (`skipped_waiting_keyframe` in "
        "`/api/stats`), so it did not start from the cache. Cached packets "
        "replayed is the hub's `replayed` counter of the viewer's down track.",
        "",
        "## Load with N viewers receiving",
        "",
        *_camera_load_rows(results),
    ]

    colds = [r["cold"] for r in results if r.get("cold")]
    warms = [w for r in results for w in r.get("warm", [])]
    if colds:
        out += [
            "",
            "## Steps of the cold viewers (from the push request)",
            "",
            "The hub sends the down offer just before it replies to the push "
            "request, so that step can come out negative.",
            "",
            *summary.step_table(colds),
        ]
    if warms:
        out += [
            "",
            "## Steps of the warm viewers (all N and modes together)",
            "",
            *summary.step_table(warms),
        ]

    failures = [r for r in results if r["status"] != "ok" or r.get("error")]
    out += ["", "## Runs that failed or were skipped", ""]
    out += [
        f"- open {r['mode']}, N={r['n']}: {r['status']}; {r['error']}" for r in failures
    ] or ["- none"]
    out.append("")
    return "\n".join(out)
