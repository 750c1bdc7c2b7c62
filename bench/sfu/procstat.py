"""CPU time of a process tree and of the whole machine, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces; the fields
    # after it start with field 3 (state) of proc(5).
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    children: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except FileNotFoundError:
        return children
    for task in tasks:
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return children


def tree_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of `pid` and its live descendants.

    The counts of a process cover all its threads (proc(5): utime, stime),
    plus the reaped children it waited for (cutime, cstime).
    """
    total_ticks = 0
    pending = [pid]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        fields = _stat_fields(current)
        if fields is None:
            continue
        # utime, stime, cutime, cstime are fields 14 to 17 of proc(5).
        total_ticks += sum(int(value) for value in fields[11:15])
        pending += _children(current)
    return total_ticks / CLOCK_TICKS


def machine_cpu_ticks() -> tuple[int, int]:
    """Return (busy, total) CPU ticks over all cores since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user..steal; guest time is already in user
    return total - idle, total


def udp_drop_counters() -> dict[str, int]:
    """Return the kernel's UDP drop counters for this network namespace.

    RcvbufErrors counts datagrams dropped because a socket's receive buffer
    was full (its reader fell behind); SndbufErrors the same on sending.
    """
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    names, values = rows[0][1:], [int(v) for v in rows[1][1:]]
    counters = dict(zip(names, values, strict=True))
    return {
        "receive_buffer": counters.get("RcvbufErrors", 0),
        "send_buffer": counters.get("SndbufErrors", 0),
    }
