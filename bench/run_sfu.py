"""SFU benchmark: one 720p VP8 publisher, N aiortc subscribers, three relays.

For each N and relay the script starts the relay, one publisher process and
one or two subscriber processes on loopback, waits until every subscriber
receives video, then measures over a fixed window:

- the relay's CPU (user + system of its process tree, % of one core),
- RTP packets each subscriber received against those the publisher sent,
  losses from sequence-number gaps, and frames (marker bits) per second,
- for a few sampled subscribers: the VP8 frames reassembled from RTP,
  compared byte for byte (hash) with the clip's frames, and decoded.

Relays: `hub` (our `hub serve`), `relay` (aiortc MediaRelay, decode and
re-encode per viewer, in sfu/relay_server.py) and `janus` (Debian's Janus
VideoRoom). Results go to bench/out/sfu-results.json and RESULTS-sfu.md.

Usage: python bench/run_sfu.py --relays hub,relay,janus --n 1,10,40,120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from sfu import janus, report  # noqa: E402
from sfu.procstat import (  # noqa: E402
    machine_cpu_ticks,
    tree_cpu_seconds,
    udp_drop_counters,
)
from sfu.source import FPS, FRAME_COUNT, KEYFRAME_INTERVAL, load_clip  # noqa: E402

logger = logging.getLogger("run_sfu")

RELAYS = ("hub", "relay", "janus")
# Packages of the repository that `hub serve` imports.
HUB_PACKAGES = ("hub", "signaling", "media", "web", "dispatch")


@dataclass
class RunResult:
    """Measurements of one relay at one N."""

    relay: str
    n: int
    status: str = "not run"  # ok, failed or skipped
    error: str = ""
    connected: int = 0
    connect_seconds: float = 0.0
    window_seconds: float = 0.0
    relay_cpu_percent: float = 0.0
    loadgen_cpu_percent: float = 0.0
    machine_busy_percent: float = 0.0
    # 1-minute load average when this measurement started.
    load_average: float = 0.0
    # Index into the results file's list of runs (see --merge).
    run: int = 0
    # Datagrams the kernel dropped on full UDP socket buffers, machine-wide.
    udp_receive_drops: int = 0
    udp_send_drops: int = 0
    sent_packets: int = 0
    sent_frames: int = 0
    subscribers: list[dict[str, Any]] = field(default_factory=list)
    integrity: list[dict[str, Any]] = field(default_factory=list)


class Child:
    """A process of the benchmark, with its log file and JSON-line channel."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, message: dict[str, Any]) -> None:
        if self.process.stdin is None:
            raise RuntimeError(f"{self.name} has no command pipe")
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def receive(self, key: str, timeout: float) -> dict[str, Any]:
        """Return the next JSON line that has `key`; raise if the child failed."""
        if self.process.stdout is None:
            raise RuntimeError(f"{self.name} has no output pipe")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name} sent no {key!r} in {timeout:.0f} s")
            line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            if not line:
                raise RuntimeError(
                    f"{self.name} exited with {await self.process.wait()} "
                    f"before sending {key!r}; see its log"
                )
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("event") == "failed":
                raise RuntimeError(f"{self.name} failed: {message.get('error')}")
            if key in message or message.get("event") == key:
                return message

    async def stop(self, grace: float = 5.0) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, ConnectionError):
            if self.process.stdin is not None:
                await self.send({"cmd": "stop"})
            else:
                self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
            return
        except TimeoutError:
            pass
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            logger.warning("%s pid=%d ignored SIGTERM; killing it", self.name, self.pid)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def git_output(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_DIR), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def snapshot_time(first_frame: float, earliest: float) -> float:
    """Return a monotonic time, not before `earliest`, halfway between frames.

    The publisher sends frame k at `first_frame + k / FPS`. The chosen time
    falls half a frame after a frame in the middle of a keyframe interval.
    By then the small frame before it has been forwarded and no keyframe
    burst is in flight, so sent and received counts read there agree.
    """
    slot = math.ceil((earliest - first_frame) * FPS)
    middle = KEYFRAME_INTERVAL // 2
    slot += (middle - slot) % KEYFRAME_INTERVAL
    return first_frame + (slot + 0.5) / FPS


def add_frame_lag(
    integrity: list[dict[str, Any]], sent_at_start: int, sent_at_end: int
) -> None:
    """Add how many frames each sampled subscriber was behind the publisher.

    With no delay, the first frame recorded after the window opens is the
    publisher's next frame, and the last one before it closes is the
    publisher's latest. The clip's frame index identifies a frame, so a lag
    is known modulo the clip length (8 s). Re-encoded frames have no index.
    """
    for item in integrity:
        first, last = item.get("first_index"), item.get("last_index")
        item["lag_start"] = (
            None if first is None else (sent_at_start - first) % FRAME_COUNT
        )
        item["lag_end"] = (
            None if last is None else (sent_at_end - 1 - last) % FRAME_COUNT
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_tcp(port: int, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.returncode is not None:
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode} at start-up; "
                "see its log"
            )
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError(
        f"{child.name} did not listen on 127.0.0.1:{port} in {timeout} s"
    )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out).resolve()
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.clip_path = self.out / "clip-720p-vp8.webm"
        self.shim: Path | None = None
        self.hub_dir = REPO_DIR
        self.results_file = self.out / "sfu-results.json"
        self.earlier: dict[str, Any] = {"runs": [], "results": []}
        if args.merge:
            if not self.results_file.exists():
                raise FileNotFoundError(
                    f"--merge needs earlier results in {self.results_file}; "
                    "run once without --merge first"
                )
            self.earlier = json.loads(self.results_file.read_text())
        self.run_index = len(self.earlier["runs"])
        self.machine = report.machine_facts()
        self.hub_source = "working tree"
        self.env = {**os.environ, "PYTHONPATH": str(BENCH_DIR)}

    async def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        pipe: bool = False,
    ) -> Child:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env or self.env,
                stdin=asyncio.subprocess.PIPE if pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipe else log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        logger.info("started %s pid=%d", name, process.pid)
        return Child(name, process)

    # Relays under test.

    async def start_relay(self, relay: str, tag: str) -> tuple[Child, str]:
        port = free_port()
        timeout = self.args.start_timeout
        if relay == "hub":
            config = self.out / "hub-bench.toml"
            data_dir = self.out / "hub-data"
            data_dir.mkdir(exist_ok=True)
            # No cameras, so the hub starts no camera ingest during the run.
            cameras = self.out / "hub-bench-cameras.toml"
            cameras.write_text("# No cameras: written by bench/run_sfu.py.\n")
            org = self.hub_dir / "configs" / "org-puer.toml"
            config.write_text(
                "# Written by bench/run_sfu.py for one benchmark run.\n"
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
            await wait_tcp(port, timeout, child)
            return child, f"ws://127.0.0.1:{port}/ws"
        if relay == "relay":
            child = await self.spawn(
                f"{tag}-relay",
                [sys.executable, "-m", "sfu.relay_server", "--port", str(port)],
                cwd=BENCH_DIR,
            )
            await wait_tcp(port, timeout, child)
            return child, f"http://127.0.0.1:{port}"
        if relay == "janus":
            if self.shim is None:
                self.shim = janus.build_shim(self.out)
            config_dir = self.out / "janus"
            janus.write_config(config_dir, port)
            child = await self.spawn(
                f"{tag}-janus",
                janus.command(config_dir),
                cwd=self.out,
                env={**os.environ, "LD_PRELOAD": str(self.shim)},
            )
            await wait_tcp(port, timeout, child)
            return child, f"http://127.0.0.1:{port}"
        raise ValueError(f"unknown relay {relay!r}; expected one of {RELAYS}")

    # Load generators.

    def loadgen_argv(self, relay: str, url: str, role: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "sfu.loadgen",
            "--role",
            role,
            "--relay",
            relay,
            "--url",
            url,
            "--clip",
            str(self.clip_path),
            "--connect-timeout",
            str(self.args.connect_timeout),
            "--deadline",
            str(self.args.run_timeout + 30),
        ]

    async def start_subscribers(
        self, relay: str, url: str, n: int, tag: str
    ) -> list[Child]:
        processes = max(1, min(self.args.subscriber_procs, n))
        children = []
        first = 0
        for part in range(processes):
            count = n // processes + (1 if part < n % processes else 0)
            sample = self.args.sample // processes + (
                1 if part < self.args.sample % processes else 0
            )
            argv = self.loadgen_argv(relay, url, "subscribers") + [
                "--count",
                str(count),
                "--first-index",
                str(first),
                "--sample",
                str(min(sample, count)),
                "--concurrency",
                str(self.args.concurrency),
            ]
            children.append(
                await self.spawn(
                    f"{tag}-subscribers{part}", argv, cwd=BENCH_DIR, pipe=True
                )
            )
            first += count
        return children

    # One measurement.

    async def run_one(self, relay: str, n: int) -> RunResult:
        result = RunResult(relay=relay, n=n, run=self.run_index)
        result.load_average = float(Path("/proc/loadavg").read_text().split()[0])
        tag = f"{relay}-n{n}"
        children: list[Child] = []
        try:
            await asyncio.wait_for(
                self._measure(relay, n, tag, result, children), self.args.run_timeout
            )
            result.status = "ok"
        except Exception as exc:  # any failure is recorded in the results
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}" or type(exc).__name__
            logger.error("relay=%s n=%d failed: %s", relay, n, result.error)
        finally:
            # Children are [relay, publisher, subscriber processes...]: stop
            # the subscribers, then the publisher, then the relay.
            await asyncio.gather(
                *(child.stop() for child in children[2:]), return_exceptions=True
            )
            for child in reversed(children[:2]):
                await child.stop()
        return result

    async def _measure(
        self,
        relay: str,
        n: int,
        tag: str,
        result: RunResult,
        children: list[Child],
    ) -> None:
        relay_child, url = await self.start_relay(relay, tag)
        children.append(relay_child)

        publisher = await self.spawn(
            f"{tag}-publisher",
            self.loadgen_argv(relay, url, "publisher"),
            cwd=BENCH_DIR,
            pipe=True,
        )
        children.append(publisher)
        await publisher.receive("ready", self.args.connect_timeout + 5)

        started = time.monotonic()
        subscribers = await self.start_subscribers(relay, url, n, tag)
        children += subscribers
        readies = await asyncio.gather(
            *(s.receive("ready", self.args.connect_timeout + 15) for s in subscribers)
        )
        result.connect_seconds = round(time.monotonic() - started, 1)
        result.connected = sum(r["connected"] for r in readies)
        errors = [e for r in readies for e in r["errors"]]
        if result.connected == 0:
            raise ConnectionError(
                f"no subscriber connected: {errors[:2]}; see {self.logs}/{tag}-*.log"
            )
        if result.connected < n:
            result.error = f"{n - result.connected} subscribers failed: {errors[:2]}"
        logger.info(
            "relay=%s n=%d connected=%d in %.1f s",
            relay,
            n,
            result.connected,
            result.connect_seconds,
        )

        await asyncio.sleep(self.args.settle)
        loadgens = [publisher, *subscribers]
        await publisher.send({"cmd": "phase"})
        first_frame = (await publisher.receive("phase", 10))["phase"]["start"]
        start_at = snapshot_time(first_frame, time.monotonic() + 0.3)
        # A whole number of keyframe intervals, so both ends fall mid-GOP.
        intervals = max(1, round(self.args.window * FPS / KEYFRAME_INTERVAL))
        end_at = start_at + intervals * KEYFRAME_INTERVAL / FPS
        before = await self._snapshot(relay_child, loadgens, start_at, record=True)
        after = await self._snapshot(relay_child, loadgens, end_at, record=False)
        self._fill(result, before, after)

        for subscriber in subscribers:
            await subscriber.send({"cmd": "report"})
        for subscriber in subscribers:
            message = await subscriber.receive("report", 30)
            result.integrity += message["report"]
        add_frame_lag(
            result.integrity,
            before["publisher"]["frames_sent"],
            after["publisher"]["frames_sent"],
        )

    async def _snapshot(
        self, relay_child: Child, loadgens: list[Child], at: float, record: bool
    ) -> dict[str, Any]:
        for child in loadgens:
            await child.send({"cmd": "snap", "at": at, "record": record})
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        snap: dict[str, Any] = {
            "time": time.monotonic(),
            "relay_cpu": tree_cpu_seconds(relay_child.pid),
            "loadgen_cpu": sum(tree_cpu_seconds(c.pid) for c in loadgens),
            "machine": machine_cpu_ticks(),
            "udp": udp_drop_counters(),
        }
        replies = [(await child.receive("snap", 10))["snap"] for child in loadgens]
        snap["publisher"] = replies[0]
        snap["subscribers"] = [s for reply in replies[1:] for s in reply["subscribers"]]
        return snap

    def _fill(
        self, result: RunResult, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        window = after["time"] - before["time"]
        result.window_seconds = round(window, 2)
        result.relay_cpu_percent = round(
            100 * (after["relay_cpu"] - before["relay_cpu"]) / window, 2
        )
        result.loadgen_cpu_percent = round(
            100 * (after["loadgen_cpu"] - before["loadgen_cpu"]) / window, 1
        )
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        result.machine_busy_percent = round(100 * busy / total * os.cpu_count(), 1)
        result.sent_packets = (
            after["publisher"]["packets_sent"] - before["publisher"]["packets_sent"]
        )
        result.sent_frames = (
            after["publisher"]["frames_sent"] - before["publisher"]["frames_sent"]
        )
        result.udp_receive_drops = (
            after["udp"]["receive_buffer"] - before["udp"]["receive_buffer"]
        )
        result.udp_send_drops = (
            after["udp"]["send_buffer"] - before["udp"]["send_buffer"]
        )
        for first, last in zip(
            before["subscribers"], after["subscribers"], strict=True
        ):
            received = last["packets"] - first["packets"]
            expected = last["expected"] - first["expected"]
            result.subscribers.append(
                {
                    "packets": received,
                    "lost": max(0, expected - received),
                    "frames": last["frames"] - first["frames"],
                    "other_packets": last["other_packets"] - first["other_packets"],
                }
            )

    def prepare_hub_source(self) -> None:
        """Pick the hub code to run: an export of HEAD, or the working tree.

        An export keeps the code fixed for the whole run while people edit
        the working tree.
        """
        commit = git_output("rev-parse", "HEAD")
        subject = git_output("log", "-1", "--format=%s", commit)
        if self.args.hub_source == "worktree":
            changed = git_output("status", "--porcelain", "--", *HUB_PACKAGES)
            self.hub_source = f"working tree at {commit[:12]} ({subject})"
            if changed:
                self.hub_source += " with uncommitted changes in the hub's packages"
            return
        target = self.out / "hub-src" / commit[:12]
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "-C", str(REPO_DIR), "archive", "--format=tar", commit],
                check=True,
                capture_output=True,
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(target, filter="data")
            (target / ".complete").touch()
        self.hub_dir = target
        self.hub_source = f"commit {commit[:12]} ({subject}), run from a git archive"
        logger.info("hub source: %s in %s", self.hub_source, target)

    async def run(self) -> list[RunResult]:
        if "hub" in self.args.relays:
            self.prepare_hub_source()
        # Make the clip before any timing starts.
        clip = load_clip(self.clip_path)
        logger.info(
            "clip=%s frames=%d bitrate=%.0f bit/s",
            self.clip_path,
            len(clip.frames),
            clip.bitrate,
        )
        results: list[RunResult] = []
        started = time.monotonic()
        for n in self.args.n:
            for relay in self.args.relays:
                result = RunResult(relay=relay, n=n, run=self.run_index)
                limit = self.args.max_n.get(relay)
                elapsed = time.monotonic() - started
                if limit is not None and n > limit:
                    result.status = "skipped"
                    result.error = f"N above --max-n {relay}={limit}"
                elif elapsed + self.args.run_timeout > self.args.budget:
                    result.status = "skipped"
                    result.error = (
                        f"time budget: {elapsed:.0f} s used of {self.args.budget:.0f} s"
                    )
                else:
                    logger.info("relay=%s n=%d starting", relay, n)
                    result = await self.run_one(relay, n)
                    logger.info(
                        "relay=%s n=%d %s cpu=%.1f%% connected=%d",
                        relay,
                        n,
                        result.status,
                        result.relay_cpu_percent,
                        result.connected,
                    )
                results.append(result)
                self.save(results, time.monotonic() - started)
        return results

    def save(self, results: list[RunResult], elapsed: float) -> None:
        """Write the results file and page, merged with earlier runs if asked."""
        this_run = {
            "command": self.args.command_line,
            "elapsed_seconds": round(elapsed),
            "args": {
                "window": self.args.window,
                "settle": self.args.settle,
                "sample": self.args.sample,
                "subscriber_procs": self.args.subscriber_procs,
            },
            "machine": self.machine,
            "hub_source": self.hub_source,
            "note": self.args.note,
        }
        # A skipped point does not replace an earlier measurement of it.
        merged = {(r["relay"], r["n"]): r for r in self.earlier["results"]}
        for result in results:
            key = (result.relay, result.n)
            if result.status != "skipped" or key not in merged:
                merged[key] = asdict(result)
        data = {
            "runs": [*self.earlier["runs"], this_run],
            "results": list(merged.values()),
        }
        data["results"].sort(key=lambda r: (r["n"], RELAYS.index(r["relay"])))
        self.results_file.write_text(json.dumps(data, indent=1))
        if self.args.results:
            page = Path(self.args.results)
            page.write_text(report.render(data))
            # The raw numbers, per subscriber, beside the page.
            page.with_suffix(".json").write_text(json.dumps(data, indent=1))


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _relay_list(text: str) -> list[str]:
    relays = [r for r in text.split(",") if r]
    unknown = [r for r in relays if r not in RELAYS]
    if unknown or not relays:
        raise argparse.ArgumentTypeError(
            f"unknown relay(s) {unknown}; expected a comma-separated subset of "
            f"{','.join(RELAYS)}"
        )
    return relays


def _max_n(text: str) -> dict[str, int]:
    limits: dict[str, int] = {}
    for item in text.split(","):
        if not item:
            continue
        relay, _, value = item.partition("=")
        if relay not in RELAYS or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"expected RELAY=N pairs such as relay=40, got {item!r}"
            )
        limits[relay] = int(value)
    return limits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SFU benchmark: CPU and delivery of hub, MediaRelay and Janus."
    )
    parser.add_argument(
        "--relays", type=_relay_list, default=list(RELAYS), help="e.g. hub,relay,janus"
    )
    parser.add_argument(
        "--n", type=_int_list, default=[1, 10, 40, 120], help="subscriber counts"
    )
    parser.add_argument(
        "--max-n",
        type=_max_n,
        default={"relay": 40},
        help="skip a relay above this N, as RELAY=N pairs; an empty value runs "
        "every relay at every N (default: relay=40, because the decode and "
        "re-encode baseline fills the machine at N=10)",
    )
    parser.add_argument(
        "--window", type=float, default=20.0, help="measured seconds (default 20)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds between all subscribers receiving and the window (default 3)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="seconds for all subscribers to connect (default 30)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=15.0,
        help="seconds for a relay to start listening (default 15)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=75.0,
        help="seconds one relay at one N may take in all (default 75)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds for the whole benchmark; later runs are skipped (default 900)",
    )
    parser.add_argument(
        "--subscriber-procs",
        type=int,
        default=2,
        help="processes the subscribers are split over (default 2)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=4,
        help="subscribers that reassemble, hash and decode frames (default 4)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="subscribers connecting at once per process (default 8)",
    )
    parser.add_argument(
        "--hub-source",
        choices=["head", "worktree"],
        default="head",
        help="hub code to run: an export of the HEAD commit under the output "
        "folder, or the working tree as it is (default head)",
    )
    parser.add_argument(
        "--note",
        default="",
        help="why this run was made, shown with it on the results page",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the earlier results in OUT/sfu-results.json and replace only "
        "the relay and N pairs measured now (to re-measure a point)",
    )
    parser.add_argument(
        "--out",
        default=str(BENCH_DIR / "out"),
        help="output folder (default bench/out)",
    )
    parser.add_argument(
        "--results",
        default=str(BENCH_DIR / "RESULTS-sfu.md"),
        help="results page to write, with its raw numbers in a .json file beside "
        "it; empty for none (default bench/RESULTS-sfu.md)",
    )
    args = parser.parse_args(argv)
    args.command_line = "python bench/run_sfu.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    return args


async def run_until_signal(bench: Bench) -> list[RunResult]:
    """Run the benchmark; SIGINT or SIGTERM stops it and its processes."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    return await bench.run()


def main() -> int:
    args = parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        results = asyncio.run(run_until_signal(Bench(args)))
    except asyncio.CancelledError:
        logger.error("stopped by a signal; results so far are in %s", args.out)
        return 130
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        print(
            f"{r.relay:6} N={r.n:<4} {r.status:8} cpu={r.relay_cpu_percent:6.1f}% "
            f"connected={r.connected} {r.error}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
