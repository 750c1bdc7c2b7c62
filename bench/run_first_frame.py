"""First-frame benchmark for conferences: how soon a new subscriber sees video.

One publisher sends the benchmark's 720p VP8 stream into a room. Then K
subscribers join one after another, `--gap` seconds apart, and stay. Each
subscriber times its way from sending `join` (Janus: from its first
request) to its first decoded VP8 picture, step by step: joined, down
offer, answer sent, ICE connected, DTLS connected, first video packet,
first keyframe, picture decoded (camera/viewers.py). The publisher records
when the relay's keyframe requests reach it.

Two publishers (camera/publisher.py): `encoder` encodes the clip's pictures
live with aiortc's VP8 encoder and makes a keyframe when asked, as a
browser does; `clip` sends the pre-encoded clip of sfu/source.py as it is,
with a keyframe every 2 s whatever anyone asks.

Relays: `hub` (`hub serve` from an export of HEAD, as run_sfu.py runs it)
and `janus` (Debian's Janus VideoRoom). Results go to
bench/out/first-frame-results.json and bench/RESULTS-first-frame.md.

Usage: python bench/run_first_frame.py --relays hub,janus --sources encoder,clip
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from camera import pages, summary  # noqa: E402
from camera.channel import Channel  # noqa: E402
from camera.publisher import SOURCES  # noqa: E402
from run_sfu import Bench, Child  # noqa: E402
from sfu.source import load_clip  # noqa: E402

logger = logging.getLogger("run_first_frame")

RELAYS = ("hub", "janus")
# Budget of one relay and publisher pair beyond the subscribers' own time.
CASE_OVERHEAD = 60.0


async def run_case(bench: Bench, relay: str, source: str) -> dict[str, Any]:
    """Start the relay and publisher, let K subscribers join, time each."""
    args = bench.args
    tag = f"first-frame-{relay}-{source}"
    case: dict[str, Any] = {
        "relay": relay,
        "source": source,
        "status": "failed",
        "error": "",
        "load_average": float(Path("/proc/loadavg").read_text().split()[0]),
        "subscribers": [],
    }
    children: list[Child] = []
    channels: list[Channel] = []
    try:
        relay_child, url = await bench.start_relay(relay, tag)
        children.append(relay_child)
        publisher = Channel(
            await bench.spawn(
                f"{tag}-publisher",
                [
                    sys.executable,
                    "-m",
                    "camera.publisher",
                    "--relay",
                    relay,
                    "--url",
                    url,
                    "--clip",
                    str(bench.clip_path),
                    "--source",
                    source,
                    "--deadline",
                    str(args.case_timeout + 30),
                ],
                cwd=BENCH_DIR,
                pipe=True,
            )
        )
        channels.append(publisher)
        await publisher.receive("ready", timeout=args.connect_timeout + 5)
        # The first keyframe and the encoder's start are behind us.
        await asyncio.sleep(args.warmup)

        viewers = Channel(
            await bench.spawn(
                f"{tag}-subscribers",
                [
                    sys.executable,
                    "-m",
                    "camera.viewers",
                    "--relay",
                    relay,
                    "--url",
                    url,
                    "--codec",
                    "vp8",
                    "--open-timeout",
                    str(args.open_timeout),
                    "--deadline",
                    str(args.case_timeout + 30),
                ],
                cwd=BENCH_DIR,
                pipe=True,
            )
        )
        channels.insert(0, viewers)
        for index in range(args.k):
            started = time.monotonic()
            if relay == "hub":
                await viewers.send({"cmd": "join", "index": index, "subscribe": "all"})
            else:
                await viewers.send({"cmd": "open", "index": index})
            opened = await viewers.receive(
                "opened", index, timeout=args.open_timeout + 10
            )
            case["subscribers"].append(opened)
            logger.info(
                "relay=%s source=%s subscriber=%d %s",
                relay,
                source,
                index,
                opened.get("error") or "decoded a picture",
            )
            await asyncio.sleep(max(0.0, started + args.gap - time.monotonic()))

        await publisher.send({"cmd": "report"})
        case["publisher"] = await publisher.receive("report", timeout=10)
        case["status"] = "ok"
    except Exception as exc:  # any failure is recorded in the results
        case["error"] = f"{type(exc).__name__}: {exc}"
        logger.error("relay=%s source=%s failed: %s", relay, source, case["error"])
    finally:
        for channel in channels:
            await channel.stop()
        for child in children:
            await child.stop()
    add_timings(case)
    return case


def add_timings(case: dict[str, Any]) -> None:
    """Add each subscriber's step times (ms after its start) and increments,
    and when the first keyframe request after its start reached the
    publisher."""
    requests = case.get("publisher", {}).get("keyframe_requests", [])
    for subscriber in case["subscribers"]:
        times = subscriber["times"]
        start = times.get("join_sent", times.get("open_started"))
        if start is None:
            continue
        offsets = summary.milliseconds(times, start)
        subscriber["offsets"] = offsets
        subscriber["increments"] = summary.increments(offsets)
        later = [t for t in requests if t >= start]
        if later:
            subscriber["keyframe_request_ms"] = round(1000 * (min(later) - start), 1)


async def run(bench: Bench) -> dict[str, Any]:
    args = bench.args
    if "hub" in args.relays:
        bench.prepare_hub_source()
    # Make the clip before any timing starts.
    load_clip(bench.clip_path)
    data: dict[str, Any] = {
        "command": args.command_line,
        "machine": bench.machine,
        "hub_source": bench.hub_source,
        "args": {
            "k": args.k,
            "gap": args.gap,
            "warmup": args.warmup,
            "open_timeout": args.open_timeout,
        },
        "note": args.note,
        "cases": [],
    }
    started = time.monotonic()
    for relay in args.relays:
        for source in args.sources:
            elapsed = time.monotonic() - started
            if elapsed + args.case_timeout > args.budget:
                data["cases"].append(
                    {
                        "relay": relay,
                        "source": source,
                        "status": "skipped",
                        "error": f"time budget: {elapsed:.0f} s used of "
                        f"{args.budget:.0f} s",
                        "subscribers": [],
                    }
                )
                continue
            logger.info("relay=%s source=%s starting", relay, source)
            try:
                case = await asyncio.wait_for(
                    run_case(bench, relay, source), args.case_timeout
                )
            except TimeoutError:
                case = {
                    "relay": relay,
                    "source": source,
                    "status": "failed",
                    "error": f"took over --case-timeout {args.case_timeout:.0f} s",
                    "subscribers": [],
                }
            data["cases"].append(case)
            save(args, data, time.monotonic() - started)
    return data


def save(args: argparse.Namespace, data: dict[str, Any], elapsed: float) -> None:
    data["elapsed_seconds"] = round(elapsed)
    out = Path(args.out) / "first-frame-results.json"
    out.write_text(json.dumps(data, indent=1))
    if args.results:
        page = Path(args.results)
        page.write_text(pages.render_first_frame(data))
        page.with_suffix(".json").write_text(json.dumps(data, indent=1))


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = [v for v in text.split(",") if v]
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}, "
                f"got {text!r}"
            )
        return values

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--relays", type=_choices(RELAYS), default=list(RELAYS), help="hub,janus"
    )
    parser.add_argument(
        "--sources",
        type=_choices(SOURCES),
        default=["encoder", "clip"],
        help="publishers to run, in this order (default encoder,clip; see "
        "camera/publisher.py)",
    )
    parser.add_argument(
        "--k", type=int, default=10, help="subscribers that join (default 10)"
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=3.3,
        help="seconds between two subscribers' joins (default 3.3, not a "
        "multiple of the clip's 2 s keyframe interval, so joins fall at "
        "different points of it)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds between the publisher's start and the first join (default 3)",
    )
    parser.add_argument(
        "--open-timeout",
        type=float,
        default=15.0,
        help="seconds a subscriber may take to its first picture (default 15)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="seconds for the publisher to connect (default 30)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=15.0,
        help="seconds for a relay to start listening (default 15)",
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=None,
        help="seconds one relay and publisher pair may take in all "
        "(default: K x gap + open timeout + 60)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds for the whole benchmark; later cases are skipped (default 900)",
    )
    parser.add_argument(
        "--hub-source",
        choices=["head", "worktree"],
        default="head",
        help="hub code to run: an export of HEAD under the output folder, or "
        "the working tree (default head)",
    )
    parser.add_argument("--note", default="", help="shown with the run on the page")
    parser.add_argument(
        "--out",
        default=str(BENCH_DIR / "out"),
        help="output folder, shared with run_sfu.py (default bench/out)",
    )
    parser.add_argument(
        "--results",
        default=str(BENCH_DIR / "RESULTS-first-frame.md"),
        help="results page, with its raw numbers in a .json file beside it; "
        "empty for none (default bench/RESULTS-first-frame.md)",
    )
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error(f"--k must be at least 1, got {args.k}")
    if args.case_timeout is None:
        args.case_timeout = args.k * args.gap + args.open_timeout + CASE_OVERHEAD
    # Fields run_sfu.Bench reads.
    args.merge = False
    args.command_line = "python bench/run_first_frame.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    return args


async def run_until_signal(bench: Bench) -> dict[str, Any]:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    return await run(bench)


def main() -> int:
    args = parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    bench = Bench(args)
    try:
        data = asyncio.run(run_until_signal(bench))
    except asyncio.CancelledError:
        logger.error("stopped by a signal; results so far are in %s", args.out)
        return 130
    failed = False
    for case in data["cases"]:
        times = [
            s["offsets"]["decoded"]
            for s in case["subscribers"]
            if "decoded" in s.get("offsets", {})
        ]
        print(
            f"{case['relay']:6} {case['source']:8} {case['status']:8} "
            f"first picture min/median/max: "
            f"{summary.spread_text(summary.spread(times))} {case['error']}"
        )
        failed |= case["status"] == "failed"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
