"""JSON-line replies of a benchmark child process, matched by key and index.

`run_sfu.Child.receive` drops every line that is not the one it waits for,
which suits a child that replies to one command at a time. The viewer
process works on several opens at once, in any order, so `Channel` reads every line
into a list and hands each one out once, to the waiter whose key and viewer
index it matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from run_sfu import Child

logger = logging.getLogger(__name__)


class Channel:
    def __init__(self, child: Child) -> None:
        if child.process.stdout is None:
            raise RuntimeError(f"{child.name} has no output pipe")
        self.child = child
        self._messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._ended = False
        self._reader = asyncio.create_task(self._read())

    @property
    def name(self) -> str:
        return self.child.name

    async def _read(self) -> None:
        stdout = self.child.process.stdout
        while True:
            line = await stdout.readline()
            if not line:
                break
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                logger.debug("%s printed a line that is not JSON: %r", self.name, line)
                continue
            self._messages.append(message)
            self._arrived.set()
        self._ended = True
        self._arrived.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.child.send(message)

    async def receive(
        self, key: str, index: int | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Return the value of the next message with `key` (and `index`).

        Raises RuntimeError when the child reports a failure or exits first,
        TimeoutError after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            for position, message in enumerate(self._messages):
                if message.get("event") == "failed":
                    raise RuntimeError(
                        f"{self.name} failed: {message.get('error')}; see its log"
                    )
                value = message.get(key)
                if value is None and message.get("event") == key:
                    value = message
                if value is None:
                    continue
                if index is not None and value.get("index") != index:
                    continue
                del self._messages[position]
                return value
            if self._ended:
                raise RuntimeError(
                    f"{self.name} exited before sending {key!r}"
                    + ("" if index is None else f" for index {index}")
                    + "; see its log"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.name} sent no {key!r}"
                    + ("" if index is None else f" for index {index}")
                    + f" in {timeout:.0f} s"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def stop(self) -> None:
        await self.child.stop()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
