"""Find where the hub's subscribers fall behind the publisher at large N.

Sets up what bench/run_sfu.py measures for the hub at one N (`hub serve`
from an export of HEAD, the VP8 publisher and the subscriber processes of
sfu/loadgen.py), then, once every subscriber receives video, samples every
`--interval` seconds for `--duration` seconds:

- up backlog: packets the publisher sent that the hub has not forwarded
  yet (publisher `packetsSent` minus the up track's packets in
  /api/stats), in flight or queued in the hub's receive path;
- down backlog: packets the hub sent that the subscribers have not counted
  yet (per subscriber: the down track's packets minus the packets received
  and lost), queued in the subscribers' receive path;
- the kernel's share of both: `rx_queue` and `tx_queue` of the UDP sockets
  of the hub and of the load generators (/proc/net/udp, bytes including
  the kernel's per-packet overhead) and their per-socket drop counters;
- CPU of the hub and of the load generators over each interval, and how
  long /api/stats took to reply (the hub's event loop serves it, so this
  is the loop's delay).

A backlog that is large in packets but small in the kernel queues sits in
the process, in Python-level queues (aioice keeps received datagrams in an
unbounded asyncio.Queue until the DTLS transport reads them). The counters
of the processes are read at the same monotonic time. /api/stats replies
when the hub's event loop gets to it, so a slow reply shifts the up
backlog by about the publisher's packet rate times the reply time.

Usage, from the repository root:
    python bench/camera/sfu_lag.py --n 120 --duration 60
Output: a table on stdout and OUT/sfu-lag-n{N}.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import run_sfu  # noqa: E402
from sfu.procstat import tree_cpu_seconds  # noqa: E402
from sfu.source import load_clip  # noqa: E402

from camera.sockets import queue_totals, udp_sockets  # noqa: E402

logger = logging.getLogger("sfu_lag")


class LagProbe:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        sfu_args = run_sfu.parse_args(
            [
                "--relays",
                "hub",
                "--n",
                str(args.n),
                "--run-timeout",
                str(args.duration + 120),
                "--out",
                args.out,
                "--results",
                "",
            ]
        )
        self.bench = run_sfu.Bench(sfu_args)
        self.children: list[run_sfu.Child] = []
        self.samples: list[dict[str, Any]] = []

    async def run(self) -> dict[str, Any]:
        bench = self.bench
        bench.prepare_hub_source()
        load_clip(bench.clip_path)
        tag = f"lag-n{self.args.n}"
        try:
            hub, url = await bench.start_relay("hub", tag)
            self.children.append(hub)
            base = "http" + url.removeprefix("ws").removesuffix("/ws")
            publisher = await bench.spawn(
                f"{tag}-publisher",
                bench.loadgen_argv("hub", url, "publisher"),
                cwd=BENCH_DIR,
                pipe=True,
            )
            self.children.append(publisher)
            await publisher.receive("ready", 35)
            started = time.monotonic()
            subscribers = await bench.start_subscribers("hub", url, self.args.n, tag)
            self.children += subscribers
            readies = [await s.receive("ready", 60) for s in subscribers]
            connected = sum(r["connected"] for r in readies)
            logger.info(
                "n=%d connected=%d in %.1f s",
                self.args.n,
                connected,
                time.monotonic() - started,
            )
            async with httpx.AsyncClient(
                base_url=base, timeout=30, trust_env=False
            ) as http:
                await self._sample_loop(hub, publisher, subscribers, http, started)
        finally:
            for child in reversed(self.children):
                await child.stop()
        return {
            "n": self.args.n,
            "connected": connected,
            "hub_source": bench.hub_source,
            "machine": bench.machine,
            "samples": self.samples,
        }

    async def _sample_loop(
        self,
        hub: run_sfu.Child,
        publisher: run_sfu.Child,
        subscribers: list[run_sfu.Child],
        http: httpx.AsyncClient,
        started: float,
    ) -> None:
        loadgens = [publisher, *subscribers]
        cpu_before = {c.name: tree_cpu_seconds(c.pid) for c in [hub, *loadgens]}
        previous_time = time.monotonic()
        end = previous_time + self.args.duration
        while time.monotonic() < end:
            at = time.monotonic() + 0.2
            for child in loadgens:
                await child.send({"cmd": "snap", "at": at, "record": False})
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            requested = time.monotonic()
            sockets = udp_sockets()
            stats = (await http.get("/api/stats")).json()
            replied = time.monotonic()
            replies = [(await c.receive("snap", 10))["snap"] for c in loadgens]
            now = time.monotonic()
            cpu_now = {c.name: tree_cpu_seconds(c.pid) for c in [hub, *loadgens]}
            interval = now - previous_time
            cpu = {
                name: round(100 * (cpu_now[name] - cpu_before[name]) / interval, 1)
                for name in cpu_now
            }
            cpu_before, previous_time = cpu_now, now
            self.samples.append(
                self._sample(
                    at - started,
                    replied - requested,
                    stats,
                    replies,
                    sockets,
                    hub,
                    loadgens,
                    cpu,
                )
            )
            sample = self.samples[-1]
            logger.info(
                "t=%.0f s up backlog=%d pkt down backlog mean=%.0f max=%d pkt "
                "hub rx=%d B subscriber rx=%d B stats answer=%.0f ms cpu=%s",
                sample["time"],
                sample["up_backlog"],
                sample["down_backlog_mean"],
                sample["down_backlog_max"],
                sample["hub_queues"]["rx_sum"],
                sum(q["rx_sum"] for q in sample["subscriber_queues"]),
                1000 * sample["stats_answer_seconds"],
                cpu,
            )
            await asyncio.sleep(self.args.interval)

    def _sample(
        self,
        since_start: float,
        stats_seconds: float,
        stats: dict[str, Any],
        replies: list[dict[str, Any]],
        sockets: dict[int, dict[str, int]],
        hub: run_sfu.Child,
        loadgens: list[run_sfu.Child],
        cpu: dict[str, float],
    ) -> dict[str, Any]:
        room = next(r for r in stats["rooms"] if r["id"] == "bench")
        track = next(t for t in room["tracks"] if t["kind"] == "video")
        names = {p["id"]: p["name"] for p in room["peers"]}
        sent_by_index: dict[int, int] = {}
        for down in track["out"]:
            name = names.get(down["peer"], "")
            if name.startswith("bench-subscriber-"):
                sent_by_index[int(name.rsplit("-", 1)[1])] = down["packets"]
        counters = [s for reply in replies[1:] for s in reply["subscribers"]]
        # The load generators list their connected subscribers in index
        # order, process after process (sfu/loadgen.py).
        backlogs = []
        for index, counter in enumerate(counters):
            if index not in sent_by_index:
                continue
            lost = counter["expected"] - counter["packets"]
            backlogs.append(sent_by_index[index] - counter["packets"] - lost)
        return {
            "time": round(since_start, 1),
            "stats_answer_seconds": round(stats_seconds, 3),
            "publisher_packets": replies[0]["packets_sent"],
            "hub_in_packets": track["in"]["packets"],
            "up_backlog": replies[0]["packets_sent"] - track["in"]["packets"],
            "down_backlog_mean": sum(backlogs) / len(backlogs) if backlogs else 0,
            "down_backlog_max": max(backlogs, default=0),
            "down_backlog_min": min(backlogs, default=0),
            "lost_total": sum(c["expected"] - c["packets"] for c in counters),
            "hub_drops": sum(d["drops"] for d in track["out"]),
            "hub_queues": queue_totals(hub.pid, sockets),
            "publisher_queues": queue_totals(loadgens[0].pid, sockets),
            "subscriber_queues": [queue_totals(c.pid, sockets) for c in loadgens[1:]],
            "cpu_percent": cpu,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="subscribers (default 120)")
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds of sampling after all subscribers receive (default 60)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between two samples (default 2)",
    )
    parser.add_argument(
        "--out",
        default=str(BENCH_DIR / "out"),
        help="output folder, shared with run_sfu.py (default bench/out)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.duration <= 0 or args.interval <= 0:
        parser.error("--n, --duration and --interval must be positive")
    return args


def main() -> int:
    args = parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    result = asyncio.run(LagProbe(args).run())
    path = Path(args.out) / f"sfu-lag-n{args.n}.json"
    path.write_text(json.dumps(result, indent=1))
    print(
        "time s | up backlog pkt | down backlog mean / max pkt | hub rx B | "
        "subscribers rx sum / max B | stats answer ms | cpu %"
    )
    for s in result["samples"]:
        rx = s["subscriber_queues"]
        print(
            f"{s['time']:6.1f} | {s['up_backlog']:5d} | "
            f"{s['down_backlog_mean']:7.1f} / {s['down_backlog_max']:5d} | "
            f"{s['hub_queues']['rx_sum']:8d} | "
            f"{sum(q['rx_sum'] for q in rx):8d} / "
            f"{max((q['rx_max'] for q in rx), default=0):7d} | "
            f"{1000 * s['stats_answer_seconds']:6.0f} | {s['cpu_percent']}"
        )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
