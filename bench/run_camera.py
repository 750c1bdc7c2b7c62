"""Camera benchmark: one RTSP camera to N viewers through `hub serve`.

GStreamer's RTSP server (tests/rtsp_server.py) loops the real 720p H.264
clip tests/data/bigbuckbunny.mp4. For each N the script starts a fresh hub
(from an export of HEAD, as run_sfu.py does) with that camera in its
camera list. A participant that receives nothing keeps the room open, and
the viewers run in a separate process (camera/viewers.py). Viewers
count packets without decoding; each one decodes with PyAV only up to its
first picture and times its steps.

1. Camera not running: viewer 0 is in the room when the camera is pushed
   into it (`POST /api/rooms/bench/cameras`), which starts the RTSP
   session. Its time runs from that request to its first picture.
2. Camera running: viewer 0 leaves and N viewers open the feed one after
   another, `--stagger` seconds apart, either by joining the room
   (`--open join`, timed from `join`) or, joined beforehand with
   `subscribe: "none"`, by subscribing to the camera's track (`--open
   subscribe`, timed from `subscribe`).
3. With the N viewers receiving, over a `--window` of seconds: the hub's
   CPU (user + system of its process tree, % of one core), the camera's
   packets into the hub, each viewer's packets received and lost (gaps in
   sequence numbers), the hub's packets sent per viewer (/api/stats), and
   the kernel's UDP drops.

Results go to bench/out/camera-results.json and bench/RESULTS-camera.md.

Usage: python bench/run_camera.py --n 1,4,16 --open join,subscribe
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(REPO_DIR))

from camera import pages, summary  # noqa: E402
from camera.channel import Channel  # noqa: E402
from camera.sockets import queue_totals, udp_sockets  # noqa: E402
from run_sfu import Bench, Child, _int_list, free_port, wait_tcp  # noqa: E402
from sfu.clients import HUB_ROOM, REPLY_TIMEOUT, _HubConnection  # noqa: E402
from sfu.procstat import (  # noqa: E402
    machine_cpu_ticks,
    tree_cpu_seconds,
    udp_drop_counters,
)

from tests.rtsp_server import CLIP, GstRtspServer, gstreamer_available  # noqa: E402

logger = logging.getLogger("run_camera")

CAMERA_ID = "53080200001320000001"
CAMERA_NAME = "基准测试摄像机"
# A unit of configs/org-puer.toml, which the bench hub loads.
CAMERA_UNIT = "puer"
OPEN_MODES = ("join", "subscribe")


class CameraBench(Bench):
    """run_sfu's Bench with a hub that has one camera in its camera list."""

    async def start_camera_hub(self, tag: str, rtsp_url: str) -> tuple[Child, str]:
        port = free_port()
        data_dir = self.out / "camera-hub-data"
        # A fresh data folder: a cameras.json left there would replace the
        # camera list below.
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        cameras = self.out / "camera-bench-cameras.toml"
        cameras.write_text(
            "# Written by bench/run_camera.py for one benchmark run.\n"
            "[ingest]\nopen_timeout = 10\nread_timeout = 5\n\n"
            f'[[camera]]\nid = "{CAMERA_ID}"\nname = "{CAMERA_NAME}"\n'
            f'network = "other"\nunit = "{CAMERA_UNIT}"\n'
            f'location = "127.0.0.1"\nmain_url = "{rtsp_url}"\n',
            encoding="utf-8",
        )
        config = self.out / "camera-bench-hub.toml"
        org = self.hub_dir / "configs" / "org-puer.toml"
        config.write_text(
            "# Written by bench/run_camera.py for one benchmark run.\n"
            f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
            f'data_dir = "{data_dir}"\n\n'
            '[ice]\nhost_addresses = ["127.0.0.1"]\n\n'
            f'[cameras]\nfile = "{cameras}"\n\n'
            f'[org]\nfile = "{org}"\n'
        )
        child = await self.spawn(
            f"{tag}-hub",
            [sys.executable, "-m", "hub.cli", "serve", "--config", str(config)],
            cwd=self.hub_dir,
            env=dict(os.environ),
        )
        await wait_tcp(port, self.args.start_timeout, child)
        return child, f"http://127.0.0.1:{port}"


async def join_anchor(ws_url: str) -> _HubConnection:
    """Join the room with a participant that receives nothing, so the room
    stays open (a camera can only be pushed into a room with people)."""
    socket = await websockets.connect(
        ws_url, open_timeout=REPLY_TIMEOUT, max_size=2**20
    )
    anchor = _HubConnection(socket, "anchor")
    await anchor.send(
        {
            "type": "join",
            "version": 1,
            "room": HUB_ROOM,
            "name": "bench-dispatcher",
            "subscribe": "none",
        }
    )
    await anchor.expect("joined")
    anchor.keep_alive(None)
    return anchor


def camera_stats(stats: dict[str, Any], track_id: str) -> dict[str, Any]:
    """Return the camera track's entry of /api/stats, or {} if it is gone."""
    for room in stats.get("rooms", []):
        for track in room["tracks"]:
            if track["id"] == track_id:
                return track
    return {}


class CameraRun:
    """One N in one open mode: a fresh hub, the cold viewer, N warm viewers
    and the measured window."""

    def __init__(
        self, bench: CameraBench, rtsp: GstRtspServer, n: int, mode: str
    ) -> None:
        self.bench = bench
        self.args = bench.args
        self.rtsp = rtsp
        self.n = n
        self.mode = mode
        self.tag = f"camera-{mode}-n{n}"
        self.result: dict[str, Any] = {
            "n": n,
            "mode": mode,
            "status": "failed",
            "error": "",
            "load_average": float(Path("/proc/loadavg").read_text().split()[0]),
            "cold": None,
            "warm": [],
            "viewers": [],
        }
        self.hub: Child | None = None
        self.viewers: Channel | None = None
        self.http: httpx.AsyncClient | None = None
        self.anchor: _HubConnection | None = None
        self.track_id = ""
        self.peers: dict[int, str] = {}

    async def run(self) -> dict[str, Any]:
        try:
            await self._run()
            self.result["status"] = "ok"
        except Exception as exc:  # any failure is recorded in the results
            self.result["error"] = f"{type(exc).__name__}: {exc}"
            logger.error("n=%d mode=%s failed: %s", self.n, self.mode, exc)
        finally:
            await self._stop()
        return self.result

    async def _stop(self) -> None:
        if self.viewers is not None:
            await self.viewers.stop()
        if self.anchor is not None:
            with contextlib.suppress(Exception):
                await self.anchor.close()
        if self.http is not None:
            await self.http.aclose()
        if self.hub is not None:
            await self.hub.stop()

    async def _run(self) -> None:
        args = self.args
        self.hub, base = await self.bench.start_camera_hub(
            self.tag, self.rtsp.url("/cam")
        )
        ws_url = "ws" + base.removeprefix("http") + "/ws"
        self.http = httpx.AsyncClient(base_url=base, timeout=30, trust_env=False)
        self.anchor = await join_anchor(ws_url)
        self.viewers = Channel(
            await self.bench.spawn(
                f"{self.tag}-viewers",
                [
                    sys.executable,
                    "-m",
                    "camera.viewers",
                    "--relay",
                    "hub",
                    "--url",
                    ws_url,
                    "--codec",
                    "h264",
                    "--open-timeout",
                    str(args.open_timeout),
                    "--deadline",
                    str(args.run_timeout + 30),
                ],
                cwd=BENCH_DIR,
                pipe=True,
            )
        )
        await self._cold_viewer()
        await self._warm_viewers()
        await asyncio.sleep(args.settle)
        start_at = time.monotonic() + 0.3
        before = await self._snapshot(start_at)
        after = await self._snapshot(start_at + args.window)
        self._fill(before, after)

    async def _cold_viewer(self) -> None:
        """Viewer 0 waits in the room; the push starts the camera."""
        viewers = self.viewers
        await viewers.send({"cmd": "join", "index": 0, "subscribe": "all"})
        joined = await viewers.receive("joined", 0, timeout=REPLY_TIMEOUT)
        self.peers[0] = joined["peer"]
        push_sent = time.monotonic()
        reply = await self.http.post(
            f"/api/rooms/{HUB_ROOM}/cameras",
            json={"camera": CAMERA_ID, "stream": "main"},
        )
        push_returned = time.monotonic()
        if reply.status_code != 201:
            raise RuntimeError(
                f"camera push failed with HTTP {reply.status_code}: "
                f"{reply.text[:300]}; see {self.bench.logs}/{self.tag}-hub.log"
            )
        self.track_id = reply.json()["track"]
        opened = await viewers.receive("opened", 0, timeout=self.args.open_timeout + 10)
        if opened.get("error"):
            raise RuntimeError(f"the first viewer failed: {opened['error']}")
        # The viewer joined before the push.
        times = {**opened["times"], "push_returned": push_returned}
        offsets = summary.milliseconds(times, push_sent, skip=("joined",))
        stats = (await self.http.get("/api/stats")).json()
        self.result["cold"] = {
            **opened,
            "offsets": offsets,
            "increments": summary.increments(offsets),
            "hub": self._down_stats(stats, 0),
        }
        await viewers.send({"cmd": "close", "index": 0})
        await viewers.receive("closed", 0, timeout=REPLY_TIMEOUT)

    def _down_stats(self, stats: dict[str, Any], index: int) -> dict[str, Any]:
        peer = self.peers.get(index)
        for down in camera_stats(stats, self.track_id).get("out", []):
            if down["peer"] == peer:
                return down
        return {}

    async def _warm_viewers(self) -> None:
        viewers = self.viewers
        indexes = list(range(1, self.n + 1))
        if self.mode == "subscribe":
            for index in indexes:
                await viewers.send({"cmd": "join", "index": index, "subscribe": "none"})
            for index in indexes:
                joined = await viewers.receive("joined", index, timeout=REPLY_TIMEOUT)
                if joined.get("error"):
                    raise RuntimeError(f"viewer {index} failed to join: {joined}")
                self.peers[index] = joined["peer"]
        first = time.monotonic() + 0.5
        for position, index in enumerate(indexes):
            delay = first + position * self.args.stagger - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.mode == "join":
                await viewers.send({"cmd": "join", "index": index, "subscribe": "all"})
            else:
                await viewers.send(
                    {"cmd": "subscribe", "index": index, "track": self.track_id}
                )
        if self.mode == "join":
            for index in indexes:
                joined = await viewers.receive("joined", index, timeout=REPLY_TIMEOUT)
                self.peers[index] = joined["peer"]
        opened = [
            await viewers.receive("opened", index, timeout=self.args.open_timeout + 10)
            for index in indexes
        ]
        stats = (await self.http.get("/api/stats")).json()
        for index, record in zip(indexes, opened, strict=True):
            times = record["times"]
            if self.mode == "join":
                start, skip = times.get("join_sent"), ()
            else:
                # The viewer joined before it subscribed.
                start, skip = times.get("subscribe_sent"), ("joined",)
            if start is not None:
                record["offsets"] = summary.milliseconds(times, start, skip)
                record["increments"] = summary.increments(record["offsets"])
            record["hub"] = self._down_stats(stats, index)
            self.result["warm"].append(record)
        failed = [r for r in opened if r.get("error")]
        if failed:
            self.result["error"] = (
                f"{len(failed)} of {self.n} viewers decoded no picture: "
                f"{failed[0]['error']}"
            )

    async def _snapshot(self, at: float) -> dict[str, Any]:
        await self.viewers.send({"cmd": "snap", "at": at})
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        snap: dict[str, Any] = {
            "time": time.monotonic(),
            "hub_cpu": tree_cpu_seconds(self.hub.pid),
            "machine": machine_cpu_ticks(),
            "udp": udp_drop_counters(),
            # Datagrams the kernel dropped on the viewers' full sockets since
            # they opened (the closed cold viewer's socket is gone).
            "viewer_socket_drops": queue_totals(self.viewers.child.pid, udp_sockets())[
                "drops"
            ],
        }
        stats = (await self.http.get("/api/stats")).json()
        snap["camera"] = camera_stats(stats, self.track_id)
        snap["viewers"] = (await self.viewers.receive("snap", timeout=10))["viewers"]
        return snap

    def _fill(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        result = self.result
        window = after["time"] - before["time"]
        result["window_seconds"] = round(window, 2)
        result["hub_cpu_percent"] = round(
            100 * (after["hub_cpu"] - before["hub_cpu"]) / window, 2
        )
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        result["machine_busy_percent"] = round(
            100 * busy / total * (os.cpu_count() or 1), 1
        )
        result["udp_drops"] = sum(after["udp"].values()) - sum(before["udp"].values())
        result["viewer_socket_drops_before_window"] = before["viewer_socket_drops"]
        camera_in = (before["camera"].get("in", {}), after["camera"].get("in", {}))
        result["camera_packets"] = camera_in[1].get("packets", 0) - camera_in[0].get(
            "packets", 0
        )
        result["camera_keyframes"] = camera_in[1].get("keyframes", 0) - camera_in[
            0
        ].get("keyframes", 0)
        sent_before = {d["peer"]: d for d in before["camera"].get("out", [])}
        sent_after = {d["peer"]: d for d in after["camera"].get("out", [])}
        first_counts = {v["index"]: v for v in before["viewers"]}
        for last in after["viewers"]:
            first = first_counts.get(last["index"])
            if first is None:
                continue
            peer = self.peers.get(last["index"])
            hub_sent = None
            if peer in sent_before and peer in sent_after:
                hub_sent = sent_after[peer]["packets"] - sent_before[peer]["packets"]
            received = last["packets"] - first["packets"]
            expected = last["expected"] - first["expected"]
            result["viewers"].append(
                {
                    "index": last["index"],
                    "packets": received,
                    "lost": max(0, expected - received),
                    "frames": last["frames"] - first["frames"],
                    # Gaps before the window: the replay of cached packets
                    # arrives as one burst that a socket buffer may not hold.
                    "lost_before_window": max(0, first["expected"] - first["packets"]),
                    "hub_sent": hub_sent,
                    "hub_drops": sent_after.get(peer, {}).get("drops"),
                }
            )


async def run(bench: CameraBench, rtsp: GstRtspServer) -> dict[str, Any]:
    args = bench.args
    bench.prepare_hub_source()
    data: dict[str, Any] = {
        "command": args.command_line,
        "machine": bench.machine,
        "hub_source": bench.hub_source,
        "args": {
            "window": args.window,
            "settle": args.settle,
            "stagger": args.stagger,
            "open_timeout": args.open_timeout,
        },
        "note": args.note,
        "results": [],
    }
    started = time.monotonic()
    for mode in args.open:
        for n in args.n:
            elapsed = time.monotonic() - started
            if elapsed + args.run_timeout > args.budget:
                result = {
                    "n": n,
                    "mode": mode,
                    "status": "skipped",
                    "error": f"time budget: {elapsed:.0f} s used of "
                    f"{args.budget:.0f} s",
                }
            else:
                logger.info("n=%d mode=%s starting", n, mode)
                camera_run = CameraRun(bench, rtsp, n, mode)
                try:
                    result = await asyncio.wait_for(camera_run.run(), args.run_timeout)
                except TimeoutError:
                    result = camera_run.result
                    result["status"] = "failed"
                    result["error"] = (
                        f"took over --run-timeout {args.run_timeout:.0f} s"
                    )
                    await camera_run._stop()
            data["results"].append(result)
            save(args, data, time.monotonic() - started)
    return data


def save(args: argparse.Namespace, data: dict[str, Any], elapsed: float) -> None:
    data["elapsed_seconds"] = round(elapsed)
    (Path(args.out) / "camera-results.json").write_text(json.dumps(data, indent=1))
    if args.results:
        page = Path(args.results)
        page.write_text(pages.render_camera(data))
        page.with_suffix(".json").write_text(json.dumps(data, indent=1))


def _modes(text: str) -> list[str]:
    modes = [m for m in text.split(",") if m]
    if not modes or any(m not in OPEN_MODES for m in modes):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(OPEN_MODES)}, got {text!r}"
        )
    return modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=_int_list, default=[1, 4, 16], help="viewer counts (default 1,4,16)"
    )
    parser.add_argument(
        "--open",
        type=_modes,
        default=["join"],
        help="how viewers open the running feed: join (join the room where "
        "the camera is shown) and/or subscribe (ask for the camera track "
        "after joining with subscribe none); default join",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=0.7,
        help="seconds between two viewers opening the running feed (default 0.7)",
    )
    parser.add_argument(
        "--window", type=float, default=20.0, help="measured seconds (default 20)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds between the last first picture and the window (default 3)",
    )
    parser.add_argument(
        "--open-timeout",
        type=float,
        default=20.0,
        help="seconds a viewer may take to its first picture (default 20)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=15.0,
        help="seconds for the hub to start listening (default 15)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=150.0,
        help="seconds one N may take in all (default 150)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds for the whole benchmark; later runs are skipped (default 900)",
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
        default=str(BENCH_DIR / "RESULTS-camera.md"),
        help="results page, with its raw numbers in a .json file beside it; "
        "empty for none (default bench/RESULTS-camera.md)",
    )
    args = parser.parse_args(argv)
    # A field run_sfu.Bench reads.
    args.merge = False
    args.command_line = "python bench/run_camera.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    return args


async def run_until_signal(bench: CameraBench, rtsp: GstRtspServer) -> dict[str, Any]:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    return await run(bench, rtsp)


def main() -> int:
    args = parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    missing = gstreamer_available()
    if missing is not None:
        logger.error("cannot serve the camera: %s", missing)
        return 2
    bench = CameraBench(args)
    rtsp = GstRtspServer({"/cam": f"clip:{CLIP}"})
    rtsp.start()
    logger.info("rtsp server pid=%d url=%s", rtsp.process.pid, rtsp.url("/cam"))
    try:
        data = asyncio.run(run_until_signal(bench, rtsp))
    except asyncio.CancelledError:
        logger.error("stopped by a signal; results so far are in %s", args.out)
        return 130
    finally:
        rtsp.stop()
    failed = False
    for result in data["results"]:
        warm = [
            r["offsets"]["decoded"]
            for r in result.get("warm", [])
            if "decoded" in r.get("offsets", {})
        ]
        cold = (result.get("cold") or {}).get("offsets", {}).get("decoded")
        print(
            f"mode={result['mode']:9} N={result['n']:<3} {result['status']:7} "
            f"cpu={result.get('hub_cpu_percent', 0):5.1f}% "
            f"cold={cold} warm={summary.spread_text(summary.spread(warm))} "
            f"{result['error']}"
        )
        failed |= result["status"] == "failed"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
