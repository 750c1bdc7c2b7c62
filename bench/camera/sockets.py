"""UDP socket queues and drops of a process, from /proc (Linux, proc(5))."""

from __future__ import annotations

import os
from pathlib import Path


def socket_inodes(pid: int) -> set[int]:
    """Return the inodes of the sockets that process `pid` has open."""
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except (FileNotFoundError, PermissionError):
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def udp_sockets() -> dict[int, dict[str, int]]:
    """Return tx_queue, rx_queue (bytes) and drops of each UDP socket of this
    network namespace, by inode (proc(5), /proc/net/udp)."""
    sockets: dict[int, dict[str, int]] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            tx_queue, rx_queue = fields[4].split(":")
            sockets[int(fields[9])] = {
                "tx_queue": int(tx_queue, 16),
                "rx_queue": int(rx_queue, 16),
                "drops": int(fields[12]),
            }
    return sockets


def queue_totals(pid: int, sockets: dict[int, dict[str, int]]) -> dict[str, int]:
    """Sum and maximum of the UDP queues of process `pid`'s sockets."""
    mine = [sockets[i] for i in socket_inodes(pid) if i in sockets]
    return {
        "sockets": len(mine),
        "rx_sum": sum(s["rx_queue"] for s in mine),
        "rx_max": max((s["rx_queue"] for s in mine), default=0),
        "tx_sum": sum(s["tx_queue"] for s in mine),
        "drops": sum(s["drops"] for s in mine),
    }
