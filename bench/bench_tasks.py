"""Task store benchmark: creates, list queries and exports on 100,000 tasks.

For each backend (a SQLite file under bench/out/, and a fresh schema in the
PostgreSQL database at --pg-url) the script:

1. creates --sample tasks through `dispatch.tasks.create_task`, the path an
   API request takes (validation, Idempotency-Key lookup, one transaction
   with the task and its "created" event, commit), from --concurrency
   coroutines, and reports creates/s and per-create latency;
2. fills the table up to --tasks rows with batched INSERTs (--batch rows per
   transaction), spread over 60 units, all statuses and three months;
3. times list queries (`dispatch.tasks.list_tasks`, one page of 50 plus
   the total count) and one page through the HTTP API, --repeat runs each;
4. times a one-month export as CSV and XLSX through the HTTP API.

Usage:
    python bench/bench_tasks.py --tasks 100000 --write

--write replaces the results section of bench/RESULTS-tasks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from dispatch import tasks  # noqa: E402
from dispatch.api import make_routes  # noqa: E402
from dispatch.db import Store  # noqa: E402
from dispatch.models import Task, TaskEvent  # noqa: E402
from dispatch.tasks import TaskQuery  # noqa: E402

RESULTS = BENCH_DIR / "RESULTS-tasks.md"
START_MARK = "<!-- bench_tasks results start -->"
END_MARK = "<!-- bench_tasks results end -->"

COUNTIES = [
    "simao",
    "ninger",
    "mojiang",
    "jingdong",
    "jinggu",
    "zhenyuan",
    "jiangcheng",
    "menglian",
    "lancang",
    "ximeng",
]
UNITS = [f"puer.{county}.town{n}" for county in COUNTIES for n in range(1, 7)]
STATUSES = ["assigned", "accepted", "in_progress", "done", "verified", "cancelled"]
STATUS_WEIGHTS = [15, 10, 15, 20, 35, 5]


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10)
        for line in lscpu.stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "model": model,
        "python": platform.python_version(),
        "load": load,
    }


@contextlib.contextmanager
def database(backend: str, pg_url: str) -> Iterator[str]:
    """Yield the URL of an empty database for `backend`, removed afterwards."""
    if backend == "sqlite":
        folder = BENCH_DIR / "out" / "tasks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"bench-{uuid.uuid4().hex[:8]}.sqlite3"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    url = make_url(pg_url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conninfo = (
        f"host={url.host} port={url.port or 5432} dbname={url.database} "
        f"user={url.username or 'postgres'}"
    )
    if url.password:
        conninfo += f" password={url.password}"
    admin = psycopg.connect(conninfo, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        query = dict(url.query, options=f"-csearch_path={schema}")
        yield url.set(query=query).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def body_for(index: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "title": f"核查事件 {index}",
        "description": "到场核查并回传照片。",
        "assigner": "zhang.wei",
        "assigner_room": "puer-command",
        "assignee_unit": rng.choice(UNITS),
        "deadline": (now + timedelta(hours=rng.randint(1, 72))).isoformat(),
        "priority": rng.choice(["low", "normal", "high", "urgent"]),
    }


async def create_sample(
    store: Store, count: int, concurrency: int, rng: random.Random
) -> dict[str, float]:
    now = datetime.now(UTC)
    bodies = [body_for(index, now, rng) for index in range(count)]
    latencies: list[float] = []
    queue = iter(enumerate(bodies))

    async def worker() -> None:
        for index, body in queue:
            started = time.perf_counter()
            await tasks.create_task(store, body, idempotency_key=f"bench-{index}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "count": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bulk_fill(
    store: Store, first: int, total: int, batch: int, rng: random.Random
) -> dict[str, float]:
    """Insert tasks first..total-1 with created times over the last 90 days."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    index = first
    while index < total:
        size = min(batch, total - index)
        rows = []
        for offset in range(size):
            created = now - timedelta(minutes=rng.randint(0, 90 * 24 * 60))
            rows.append(
                {
                    "title": f"核查事件 {index + offset}",
                    "description": "到场核查并回传照片。",
                    "assigner": "zhang.wei",
                    "assigner_room": rng.choice(["puer-command", "yn-command"]),
                    "assignee_unit": rng.choice(UNITS),
                    "deadline": created + timedelta(hours=rng.randint(1, 96)),
                    "priority": rng.choice(["low", "normal", "high", "urgent"]),
                    "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                    "created_at": created,
                    "updated_at": created,
                    "idempotency_key": f"bulk-{index + offset}",
                }
            )
        with store.writing() as session:
            ids = session.scalars(
                insert(Task).returning(Task.id, sort_by_parameter_order=True), rows
            ).all()
            session.execute(
                insert(TaskEvent),
                [
                    {
                        "task_id": task_id,
                        "kind": "created",
                        "actor": "zhang.wei",
                        "at": row["created_at"],
                        "to_status": "assigned",
                        "note": "",
                    }
                    for task_id, row in zip(ids, rows, strict=True)
                ],
            )
        index += size
    elapsed = time.perf_counter() - started
    return {
        "count": total - first,
        "seconds": elapsed,
        "per_second": (total - first) / elapsed,
    }


def list_queries(now: datetime) -> list[tuple[str, TaskQuery]]:
    month_start = (now - timedelta(days=30)).replace(hour=0, minute=0, second=0)
    return [
        ("first page, no filter", TaskQuery()),
        ("unit (1 of 60)", TaskQuery(unit="puer.simao.town1")),
        ("unit with sub-units (1 county)", TaskQuery(unit="puer.simao", subunits=True)),
        ("status=in_progress", TaskQuery(statuses=["in_progress"])),
        ("overdue=true", TaskQuery(overdue=True)),
        ("30-day range", TaskQuery(created_from=month_start, created_to=now)),
        (
            "unit + status + range",
            TaskQuery(
                unit="puer.ninger.town2",
                statuses=["assigned", "accepted"],
                created_from=month_start,
                created_to=now,
            ),
        ),
        ("page at offset 50,000", TaskQuery(offset=50_000)),
    ]


async def time_lists(store: Store, repeat: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    results = []
    for name, query in list_queries(now):
        timings = []
        total = 0
        for _ in range(repeat):
            started = time.perf_counter()
            page = await tasks.list_tasks(store, query, now=now)
            timings.append(time.perf_counter() - started)
            total = page["total"]
        results.append(
            {
                "name": name,
                "matches": total,
                "p50_ms": statistics.median(timings) * 1000,
                "max_ms": max(timings) * 1000,
            }
        )
    return results


async def time_api(store: Store, repeat: int) -> dict[str, Any]:
    app = Starlette(routes=[Mount("/api", routes=make_routes(store))])
    transport = httpx.ASGITransport(app=app)
    month = (datetime.now(UTC) - timedelta(days=31)).strftime("%Y-%m")
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = await api.get("/api/tasks", params={"unit": "puer.simao.town1"})
            response.raise_for_status()
            timings.append(time.perf_counter() - started)
        exports = {}
        for kind in ("csv", "xlsx"):
            started = time.perf_counter()
            response = await api.get(
                f"/api/tasks/export.{kind}", params={"month": month}
            )
            response.raise_for_status()
            exports[kind] = {
                "seconds": time.perf_counter() - started,
                "bytes": len(response.content),
            }
            if kind == "csv":
                table = csv.reader(io.StringIO(response.content.decode("utf-8-sig")))
                exports["rows"] = sum(1 for _ in table) - 1
    return {
        "page_p50_ms": statistics.median(timings) * 1000,
        "page_max_ms": max(timings) * 1000,
        "month": month,
        "exports": exports,
    }


async def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(20251204)
    with database(backend, args.pg_url) as url:
        store = Store.open(url)
        try:
            sample = await create_sample(store, args.sample, args.concurrency, rng)
            print(f"{backend}: {sample['per_second']:.0f} creates/s", file=sys.stderr)
            fill = bulk_fill(store, args.sample, args.tasks, args.batch, rng)
            print(f"{backend}: filled {fill['count']} rows", file=sys.stderr)
            lists = await time_lists(store, args.repeat)
            api = await time_api(store, args.repeat)
        finally:
            store.close()
    return {
        "backend": backend,
        "sample": sample,
        "fill": fill,
        "lists": lists,
        "api": api,
    }


def render(
    args: argparse.Namespace, info: dict[str, str], runs: list[dict[str, Any]]
) -> str:
    command = "python bench/bench_tasks.py " + " ".join(
        shlex.quote(arg) for arg in sys.argv[1:]
    )
    lines = [
        START_MARK,
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- machine: `nproc` = {info['nproc']}, `lscpu` model: {info['model']}",
        f"- Python {info['python']}; load average at start: {info['load']}",
        f"- command: `{command}`",
        "",
        "### Creates",
        "",
        f"{args.sample:,} creates through `dispatch.tasks.create_task` from "
        f"{args.concurrency} coroutines (one transaction and commit each), then "
        f"batched INSERTs of {args.batch:,} rows per transaction up to "
        f"{args.tasks:,} tasks.",
        "",
        "| backend | creates/s | create p50 ms | create p99 ms | bulk rows/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        sample, fill = run["sample"], run["fill"]
        lines.append(
            f"| {run['backend']} | {sample['per_second']:.0f} | "
            f"{sample['p50_ms']:.1f} | {sample['p99_ms']:.1f} | "
            f"{fill['per_second']:.0f} |"
        )
    lines += [
        "",
        f"### List page latency ({args.tasks:,} tasks, page of 50 plus total count, "
        f"median and max of {args.repeat} runs, ms)",
        "",
        "| query | "
        + " | ".join(f"{run['backend']} matches | p50 | max" for run in runs)
        + " |",
        "|---|" + "---:|---:|---:|" * len(runs),
    ]
    for index, (name, _) in enumerate(list_queries(datetime.now(UTC))):
        cells = []
        for run in runs:
            row = run["lists"][index]
            cells.append(
                f"{row['matches']:,} | {row['p50_ms']:.1f} | {row['max_ms']:.1f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Through the HTTP API (httpx ASGITransport, in process)",
        "",
        "| backend | GET /api/tasks?unit=… p50 ms | max ms | month (rows) "
        "| CSV s | CSV KiB | XLSX s | XLSX KiB |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        api = run["api"]
        csv_export, xlsx_export = api["exports"]["csv"], api["exports"]["xlsx"]
        lines.append(
            f"| {run['backend']} | {api['page_p50_ms']:.1f} | "
            f"{api['page_max_ms']:.1f} | {api['month']} ({api['exports']['rows']:,}) | "
            f"{csv_export['seconds']:.2f} | "
            f"{csv_export['bytes'] / 1024:.0f} | {xlsx_export['seconds']:.2f} | "
            f"{xlsx_export['bytes'] / 1024:.0f} |"
        )
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if START_MARK in text and END_MARK in text:
        before = text.split(START_MARK)[0]
        after = text.split(END_MARK, 1)[1].lstrip("\n")
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section if text else section
    RESULTS.write_text(text, encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--tasks",
        type=int,
        default=100_000,
        help="tasks in the table (default: 100000)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=5_000,
        help="tasks created one request at a time (default: 5000)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="coroutines creating the sample (default: 8)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=5_000,
        help="rows per bulk INSERT transaction (default: 5000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=20, help="runs of each list query (default: 20)"
    )
    parser.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="comma-separated: sqlite, postgresql",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="PostgreSQL database to make a scratch schema in",
    )
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    return parser


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    if not 0 < args.sample <= args.tasks:
        parser.error(f"--sample must be 1 to --tasks ({args.tasks}), got {args.sample}")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    for name in backends:
        if name not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {name!r}; use sqlite or postgresql")

    info = machine()
    runs = [asyncio.run(run_backend(name, args)) for name in backends]
    section = render(args, info, runs)
    print(section)
    if args.write:
        write_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
