"""Wall screen (wall.html) in headless Chromium against a real `hub serve`
whose cameras are served by a real GStreamer RTSP server.

Every camera has a main stream (the 1280x720 Big Buck Bunny clip) and a sub
stream (the same clip scaled to 640x360), so the picture size shows which
stream a tile shows. The checks read what the dispatcher sees: the camera
tree, tile names and states, decoded frames, and what an aiortc participant
of a running session receives when the wall pushes a camera to it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser import launch_chromium, start_hub_again, stop_hub, timeout_ms
from tests.hubclient import HubClient
from tests.hubproc import HubProcess, run_hub, scaled
from tests.media_tracks import FlatVideoTrack
from tests.rtsp_server import (
    CLIP,
    CLIP_HEIGHT,
    CLIP_WIDTH,
    GstRtspServer,
    gstreamer_available,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.rtsp,
    pytest.mark.skipif(
        gstreamer_available() is not None, reason=str(gstreamer_available())
    ),
]

SUB_WIDTH = 640
SUB_HEIGHT = 360
# Keyframe interval of the sub clip in frames (1 s at 25 fps); the main clip
# has one keyframe per 132-frame loop.
SUB_KEYFRAME_INTERVAL = 25

# (id, name, network, unit) of the test cameras; the units are in
# configs/org-puer.toml.
CAMERAS = [
    ("53080200001320000011", "思茅区茶苑路口", "xueliang", "puer.simao.simao"),
    ("53080200001310000112", "思茅区客运站进站口", "tianyan", "puer.simao"),
    ("53082100001320000013", "宁洱镇茶源广场", "xueliang", "puer.ninger.ninger"),
    ("53080200001320000014", "南屏镇人民政府大门", "xueliang", "puer.simao.nanping"),
]

ROOM = "puer-joint"
PARTICIPANT = "思茅区指挥室"
MORE_FRAMES = 10

TILES = """() => [...document.querySelectorAll(".wall-tile")]
  .filter((tile) => !tile.hidden)
  .map((tile) => {
    const videos = tile.querySelectorAll(".wall-tile-stage video");
    const video = videos[videos.length - 1] ?? null;
    const message = tile.querySelector(".wall-tile-message");
    const detail = tile.querySelector(".wall-tile-message-detail");
    return {
      index: Number(tile.dataset.index),
      state: tile.dataset.state,
      camera: tile.dataset.camera ?? null,
      stream: tile.dataset.stream ?? null,
      track: tile.dataset.track ?? null,
      name: tile.querySelector(".wall-tile-name").textContent,
      streamLabel: tile.querySelector(".wall-tile-stream").textContent,
      message: message.hidden
        ? ""
        : tile.querySelector(".wall-tile-message-text").textContent,
      detail: message.hidden || detail.hidden ? "" : detail.textContent,
      frames: video ? video.getVideoPlaybackQuality().totalVideoFrames : 0,
      width: video ? video.videoWidth : 0,
      height: video ? video.videoHeight : 0,
      firstFrameMs:
        tile.dataset.firstFrameMs ? Number(tile.dataset.firstFrameMs) : null,
      enlarged: tile.classList.contains("enlarged"),
    };
  })"""

# Resolves once tile `index` is in `state` and its video decoded over `frames`
# frames at `width` pixels (0: any width).
TILE_PLAYING = """([index, frames, width]) => {
  const tile = document.querySelector(`.wall-tile[data-index="${index}"]`);
  const videos = tile.querySelectorAll(".wall-tile-stage video");
  const video = videos[videos.length - 1];
  return tile.dataset.state === "playing" && video !== undefined &&
    video.getVideoPlaybackQuality().totalVideoFrames > frames &&
    (width === 0 || video.videoWidth === width);
}"""

# Luma of tile `index`'s current picture, scaled to width x height.
TILE_THUMBNAIL = """([index, width, height]) => {
  const videos = document.querySelectorAll(
    `.wall-tile[data-index="${index}"] .wall-tile-stage video`);
  const video = videos[videos.length - 1];
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0, width, height);
  const { data } = context.getImageData(0, 0, width, height);
  const luma = [];
  for (let i = 0; i < data.length; i += 4) {
    luma.push(0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]);
  }
  return luma;
}"""
THUMB_WIDTH = 64
THUMB_HEIGHT = 36
# Pearson correlation with the best-matching clip frame above which a tile's
# picture counts as the camera's picture. An intact frame scores above 0.99;
# a frame whose first slice was lost (green blocks) scored 0.56.
MIN_CLIP_CORRELATION = 0.9

TILE_STATE = """([index, state]) =>
  document.querySelector(`.wall-tile[data-index="${index}"]`).dataset.state === state"""


def save_screenshot(path: Path) -> None:
    """Copy a screenshot to HUB_TEST_SCREENSHOT_DIR when that is set."""
    target = os.environ.get("HUB_TEST_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def make_sub_clip(target: Path) -> None:
    """Write the clip scaled to SUB_WIDTH x SUB_HEIGHT as H.264 Main profile
    without B-frames, with a keyframe every SUB_KEYFRAME_INTERVAL frames,
    like a camera's sub stream."""
    # Level 3.1 as in the main clip (profile-level-id 4d401f). Sub and main
    # streams at two levels on one down connection are covered by
    # tests/test_media_codecs.py, not by this browser test.
    with av.open(str(CLIP)) as source, av.open(str(target), "w") as output:
        stream = source.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        out = output.add_stream("libx264", rate=rate)
        out.width = SUB_WIDTH
        out.height = SUB_HEIGHT
        out.pix_fmt = "yuv420p"
        out.options = {
            "preset": "veryfast",
            "profile": "main",
            "level": "31",
            "x264-params": (
                f"keyint={SUB_KEYFRAME_INTERVAL}:min-keyint={SUB_KEYFRAME_INTERVAL}"
                ":bframes=0:scenecut=0:sliced-threads=0"
            ),
        }
        for index, frame in enumerate(source.decode(stream)):
            scaled_frame = frame.reformat(SUB_WIDTH, SUB_HEIGHT, format="yuv420p")
            scaled_frame.pts = index
            scaled_frame.time_base = 1 / rate
            for packet in out.encode(scaled_frame):
                output.mux(packet)
        for packet in out.encode():
            output.mux(packet)


def luma_thumbnails(path: Path) -> np.ndarray:
    """Return one row per frame of `path`: its luma at THUMB_WIDTH x
    THUMB_HEIGHT."""
    rows = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            small = frame.reformat(THUMB_WIDTH, THUMB_HEIGHT, format="gray")
            rows.append(small.to_ndarray().astype(float).ravel())
    return np.array(rows)


def best_correlation(luma: list[float], reference: np.ndarray) -> float:
    """Return the highest Pearson correlation of `luma` with a reference row."""
    sample = np.array(luma)
    sample = (sample - sample.mean()) / (sample.std() or 1.0)
    rows = reference - reference.mean(axis=1, keepdims=True)
    rows = rows / np.where(
        rows.std(axis=1, keepdims=True) == 0, 1.0, rows.std(axis=1, keepdims=True)
    )
    return float((rows @ sample).max() / sample.size)


async def assert_shows_clip(page: Page, index: int, reference: np.ndarray) -> None:
    """Check that three pictures of tile `index`, some frames apart, are
    frames of the clip and not damaged ones."""
    for _ in range(3):
        await wait_playing(page, index, 5)
        luma = await page.evaluate(TILE_THUMBNAIL, [index, THUMB_WIDTH, THUMB_HEIGHT])
        best = best_correlation(luma, reference)
        assert best > MIN_CLIP_CORRELATION, (
            f"tile {index} shows a picture unlike the clip (best correlation "
            f"{best:.2f}, need {MIN_CLIP_CORRELATION})"
        )


def hub_config(folder: Path, rtsp: GstRtspServer) -> str:
    """Return the extra hub configuration: a cameras file whose cameras all
    read the RTSP server's /main and /sub mounts (run_hub adds the sample org
    tree)."""
    cameras = folder / "cameras.toml"
    entries = "".join(
        f"""
[[camera]]
id = "{camera_id}"
name = "{name}"
network = "{network}"
unit = "{unit}"
location = "{name}"
main_url = "{rtsp.url("/main")}"
sub_url = "{rtsp.url("/sub")}"
"""
        for camera_id, name, network, unit in CAMERAS
    )
    cameras.write_text(
        f"""
[ingest]
open_timeout = 5
read_timeout = 2
linger = 1
backoff_initial = 0.5
backoff_max = 2
{entries}""",
        encoding="utf-8",
    )
    return f'\n[cameras]\nfile = "{cameras}"\n'


@pytest.fixture(scope="module")
def sub_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "sub.mp4"
    make_sub_clip(path)
    return path


@pytest.fixture(scope="module")
def sub_frames(sub_clip) -> np.ndarray:
    return luma_thumbnails(sub_clip)


@pytest.fixture(scope="module")
def main_frames() -> np.ndarray:
    return luma_thumbnails(CLIP)


def rtsp_server(sub_clip: Path, port: int | None = None) -> GstRtspServer:
    return GstRtspServer(
        {"/main": f"clip:{CLIP}", "/sub": f"clip:{sub_clip}"}, port=port
    )


@pytest.fixture(scope="module")
def camera_hub(tmp_path_factory, sub_clip) -> Iterator[HubProcess]:
    """A hub whose four cameras play; shared by the tests that do not break
    the RTSP server."""
    folder = tmp_path_factory.mktemp("wall-hub")
    with (
        rtsp_server(sub_clip) as rtsp,
        run_hub(folder, hub_config(folder, rtsp)) as hub,
    ):
        yield hub


async def open_wall(browser: Browser, hub: HubProcess, **viewport: int) -> Page:
    """Open the wall in a fresh context and wait until its own session is
    connected and the camera tree lists every test camera."""
    size = {"width": 1920, "height": 1080, **viewport}
    context = await browser.new_context(viewport=size)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{hub.url}/wall.html?debug=1&lang=zh&name=张伟")
    await page.wait_for_function(
        "document.querySelector('#connection-state').dataset.state === 'connected'",
        timeout=timeout_ms(),
    )
    await page.wait_for_function(
        "(count) => document.querySelectorAll('.tree-camera').length === count",
        arg=len(CAMERAS),
        timeout=timeout_ms(),
    )
    return page


async def tiles(page: Page) -> list[dict]:
    return await page.evaluate(TILES)


async def tile(page: Page, index: int) -> dict:
    return next(t for t in await tiles(page) if t["index"] == index)


async def wait_playing(page: Page, index: int, more: int = 0, width: int = 0) -> dict:
    """Wait until tile `index` plays and decoded `more` frames beyond now."""
    before = (await tile(page, index))["frames"]
    await page.wait_for_function(
        TILE_PLAYING, arg=[index, before + more, width], timeout=timeout_ms(2)
    )
    return await tile(page, index)


def wall_room_cameras(hub: HubProcess, room: str) -> list[tuple[str, str]]:
    listed = httpx.get(f"{hub.url}/api/rooms/{room}/cameras").json()["cameras"]
    return sorted((entry["camera"], entry["stream"]) for entry in listed)


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_wall_tree_lists_units_and_cameras(camera_hub) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await open_wall(browser, camera_hub)

        assert await page.text_content("h1.brand") == "调度指挥大屏"
        units = await page.eval_on_selector_all(
            ".tree-unit > summary", "nodes => nodes.map(n => n.textContent)"
        )
        # The city, the two counties and the three townships that have
        # cameras, and no unit without one.
        assert units == [
            "普洱市综治中心",
            "思茅区综治中心",
            "思茅街道综治中心",
            "南屏镇综治中心",
            "宁洱哈尼族彝族自治县综治中心",
            "宁洱镇综治中心",
        ]
        cameras = await page.eval_on_selector_all(
            ".tree-camera",
            """nodes => nodes.map(n => ({
                 id: n.dataset.camera,
                 unit: n.closest(".tree-unit").dataset.unit,
                 network: n.querySelector(".network-badge").textContent,
                 name: n.querySelector(".tree-camera-name").textContent,
                 state: n.querySelector(".camera-state").textContent}))""",
        )
        expected = {
            camera_id: (unit, {"xueliang": "雪亮", "tianyan": "天眼"}[network], name)
            for camera_id, name, network, unit in CAMERAS
        }
        assert {
            c["id"]: (c["unit"], c["network"], c["name"]) for c in cameras
        } == expected
        assert {c["state"] for c in cameras} == {"未调阅"}

        # The filter keeps matching cameras only.
        await page.fill("#camera-filter", "宁洱")
        names = await page.eval_on_selector_all(
            ".tree-camera-name", "nodes => nodes.map(n => n.textContent)"
        )
        assert names == ["宁洱镇茶源广场"]
        await page.fill("#camera-filter", "")

        # Layout buttons give 1, 4, 9 or 16 tiles, and empty tiles show a hint.
        for layout in (1, 9, 16, 4):
            await page.click(f'#layout-buttons button[data-layout="{layout}"]')
            shown = await tiles(page)
            assert len(shown) == layout
            assert all(t["state"] == "empty" for t in shown)
        assert (await tile(page, 0))["message"] == "点击左侧摄像机或参会方，或拖到此处"

        await page.click("#lang-toggle")
        assert await page.text_content("h1.brand") == "Dispatch wall"
        badge = await page.text_content(
            f'.tree-camera[data-camera="{CAMERAS[1][0]}"] .network-badge'
        )
        assert badge == "Tianyan"
        assert page.errors == []
        await browser.close()


async def test_wall_plays_four_cameras(camera_hub, tmp_path, sub_frames) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await open_wall(browser, camera_hub)
        room = await page.evaluate("window.__wall.room()")

        # One click per camera fills the four tiles in order.
        for camera_id, *_ in CAMERAS:
            await page.click(f'.tree-camera[data-camera="{camera_id}"]')
        for index in range(4):
            await wait_playing(page, index, MORE_FRAMES, width=SUB_WIDTH)

        shown = await tiles(page)
        assert [t["camera"] for t in shown] == [c[0] for c in CAMERAS]
        assert [t["name"] for t in shown] == [c[1] for c in CAMERAS]
        assert all(t["stream"] == "sub" and t["streamLabel"] == "子码流" for t in shown)
        assert all((t["width"], t["height"]) == (SUB_WIDTH, SUB_HEIGHT) for t in shown)
        assert all(t["message"] == "" for t in shown)
        for index in range(4):
            await assert_shows_clip(page, index, sub_frames)
        assert wall_room_cameras(camera_hub, room) == sorted(
            (c[0], "sub") for c in CAMERAS
        )
        # The tree shows the cameras online now that the wall watches them.
        await page.wait_for_function(
            """() => [...document.querySelectorAll('.tree-camera')]
                 .every((n) => n.dataset.state === 'online')""",
            timeout=timeout_ms(),
        )

        # Clicking a camera that is already shown adds no second tile.
        await page.click(f'.tree-camera[data-camera="{CAMERAS[0][0]}"]')
        assert [t["camera"] for t in await tiles(page)] == [c[0] for c in CAMERAS]

        first_frame = [t["firstFrameMs"] for t in await tiles(page)]
        assert all(ms is not None and ms > 0 for ms in first_frame)
        print(
            f"\nwall tile open to first decoded frame, sub stream with a keyframe "
            f"every {SUB_KEYFRAME_INTERVAL} frames: {first_frame} ms, median "
            f"{statistics.median(first_frame):.0f} ms"
        )

        screenshot = tmp_path / "wall-four-tiles.png"
        await page.screenshot(path=str(screenshot))
        save_screenshot(screenshot)

        # Going down to one tile closes the other three and their pushes.
        await page.click('#layout-buttons button[data-layout="1"]')
        assert [t["camera"] for t in await tiles(page)] == [CAMERAS[0][0]]
        await wait_until(
            lambda: wall_room_cameras(camera_hub, room) == [(CAMERAS[0][0], "sub")],
            10,
            "the wall room to keep only the first camera",
        )
        await wait_playing(page, 0, MORE_FRAMES)

        # Closing the last tile empties the wall's room.
        await page.click('.wall-tile[data-index="0"] .tool-close')
        assert (await tile(page, 0))["state"] == "empty"
        await wait_until(
            lambda: wall_room_cameras(camera_hub, room) == [], 10, "an empty wall room"
        )
        assert page.errors == []
        await browser.close()


async def test_wall_enlarge_switches_to_main(camera_hub, main_frames) -> None:
    camera_id, name = CAMERAS[1][0], CAMERAS[1][1]
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await open_wall(browser, camera_hub)
        room = await page.evaluate("window.__wall.room()")
        await page.drag_and_drop(
            f'.tree-camera[data-camera="{camera_id}"]', '.wall-tile[data-index="2"]'
        )
        playing = await wait_playing(page, 2, MORE_FRAMES, width=SUB_WIDTH)
        assert (playing["camera"], playing["name"], playing["stream"]) == (
            camera_id,
            name,
            "sub",
        )

        # Double-click: the tile fills the grid and shows the main stream; the
        # sub stream is dropped once the main one plays.
        await page.dblclick('.wall-tile[data-index="2"]')
        enlarged = await wait_playing(page, 2, MORE_FRAMES, width=CLIP_WIDTH)
        assert enlarged["enlarged"]
        assert enlarged["stream"] == "main"
        assert enlarged["streamLabel"] == "主码流"
        assert enlarged["height"] == CLIP_HEIGHT
        assert enlarged["track"] == f"cam-{camera_id}-main"
        await assert_shows_clip(page, 2, main_frames)
        assert await page.is_hidden('.wall-tile[data-index="0"]')
        box = await page.locator('.wall-tile[data-index="2"]').bounding_box()
        grid = await page.locator("#wall-grid").bounding_box()
        assert box["width"] > grid["width"] * 0.95
        assert box["height"] > grid["height"] * 0.95
        await wait_until(
            lambda: wall_room_cameras(camera_hub, room) == [(camera_id, "main")],
            10,
            "the wall room to hold the main stream only",
        )

        # The restore button goes back to the grid and the sub stream.
        await page.click('.wall-tile[data-index="2"] .tool-enlarge')
        restored = await wait_playing(page, 2, MORE_FRAMES, width=SUB_WIDTH)
        assert not restored["enlarged"]
        assert restored["stream"] == "sub"
        assert await page.is_visible('.wall-tile[data-index="0"]')
        await wait_until(
            lambda: wall_room_cameras(camera_hub, room) == [(camera_id, "sub")],
            10,
            "the wall room to hold the sub stream only",
        )
        assert page.errors == []

        # A reloaded wall (a screen that restarted) shows the same camera in
        # the same tile again.
        await page.reload()
        await page.wait_for_function(
            "document.querySelector('#connection-state').dataset.state === 'connected'",
            timeout=timeout_ms(),
        )
        reloaded = await wait_playing(page, 2, MORE_FRAMES, width=SUB_WIDTH)
        assert reloaded["camera"] == camera_id
        assert [t["camera"] for t in await tiles(page)] == [None, None, camera_id, None]
        await browser.close()


async def test_wall_tile_recovers_after_camera_outage(tmp_path, sub_clip) -> None:
    camera_id = CAMERAS[0][0]
    rtsp = rtsp_server(sub_clip)
    rtsp.start()
    restarted: GstRtspServer | None = None
    try:
        with run_hub(tmp_path, hub_config(tmp_path, rtsp)) as hub:
            async with async_playwright() as playwright:
                browser = await launch_chromium(playwright)
                page = await open_wall(browser, hub)
                await page.click(f'.tree-camera[data-camera="{camera_id}"]')
                await wait_playing(page, 0, MORE_FRAMES, width=SUB_WIDTH)

                # The camera loses power: the tile shows that it is offline and why.
                rtsp.kill()
                await page.wait_for_function(
                    TILE_STATE, arg=[0, "offline"], timeout=timeout_ms()
                )
                down = await tile(page, 0)
                assert down["message"] == "摄像机离线，恢复后自动重新连接"
                # The hub's reason, e.g. the connection to the camera refused.
                assert down["detail"] != ""
                assert down["detail"] != "原因未知"
                await page.wait_for_selector(
                    f'.tree-camera[data-camera="{camera_id}"][data-state="offline"]',
                    timeout=timeout_ms(),
                )

                # The camera comes back on the same address: the tile plays
                # again without anyone touching the wall.
                restarted = rtsp_server(sub_clip, port=rtsp.port)
                restarted.start()
                back = await wait_playing(page, 0, MORE_FRAMES, width=SUB_WIDTH)
                assert back["message"] == ""
                assert back["camera"] == camera_id
                assert page.errors == []
                await browser.close()
    finally:
        rtsp.stop()
        if restarted is not None:
            restarted.stop()


async def test_wall_tile_returns_after_hub_restart(tmp_path, sub_clip) -> None:
    """A restarted hub has forgotten the wall's room and pushes; the wall
    rejoins and opens its tiles again by itself."""
    camera_id = CAMERAS[1][0]
    with (
        rtsp_server(sub_clip) as rtsp,
        run_hub(tmp_path, hub_config(tmp_path, rtsp)) as hub,
    ):
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            page = await open_wall(browser, hub)
            await page.click(f'.tree-camera[data-camera="{camera_id}"]')
            await wait_playing(page, 0, MORE_FRAMES, width=SUB_WIDTH)
            room = await page.evaluate("window.__wall.room()")

            stop_hub(hub)
            await page.wait_for_function(
                "document.querySelector('#connection-state').dataset.state "
                "=== 'reconnecting'",
                timeout=timeout_ms(),
            )
            with start_hub_again(hub):
                back = await wait_playing(page, 0, MORE_FRAMES, width=SUB_WIDTH)
                assert back["camera"] == camera_id
                assert back["stream"] == "sub"
                assert back["message"] == ""
                assert wall_room_cameras(hub, room) == [(camera_id, "sub")]
                assert page.errors == []
                await browser.close()


async def test_wall_offline_camera_retries_until_up(tmp_path, sub_clip) -> None:
    """A camera that is down when the tile opens shows the hub's reason and
    opens by itself once it is reachable."""
    camera_id = CAMERAS[2][0]
    rtsp = rtsp_server(sub_clip)
    config = hub_config(tmp_path, rtsp)
    try:
        with run_hub(tmp_path, config) as hub:
            async with async_playwright() as playwright:
                browser = await launch_chromium(playwright)
                page = await open_wall(browser, hub)
                await page.click(f'.tree-camera[data-camera="{camera_id}"]')
                await page.wait_for_function(
                    TILE_STATE, arg=[0, "offline"], timeout=timeout_ms()
                )
                offline = await tile(page, 0)
                assert offline["message"] == "摄像机离线，恢复后自动重新连接"
                assert offline["detail"] != ""

                rtsp.start()
                await wait_playing(page, 0, MORE_FRAMES, width=SUB_WIDTH)
                assert page.errors == []
                await browser.close()
    finally:
        rtsp.stop()


async def test_wall_joins_room_and_pushes_camera(camera_hub) -> None:
    camera_id, name = CAMERAS[3][0], CAMERAS[3][1]
    participant = HubClient(camera_hub.ws_url, ROOM, PARTICIPANT)
    await participant.join()
    await participant.publish([(FlatVideoTrack(90), "camera")])
    try:
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            page = await open_wall(browser, camera_hub)
            room_item = f'.room-item[data-room="{ROOM}"]'
            await page.wait_for_selector(room_item, timeout=timeout_ms())
            assert await page.text_content(f"{room_item} .room-title") == "视频会商室"

            # A participant of the running session sits in a tile next to a
            # camera.
            await page.click(f"{room_item} .room-join")
            source = f"{room_item} .room-source"
            await page.wait_for_selector(source, timeout=timeout_ms())
            assert await page.text_content(f"{source} .room-source-name") == PARTICIPANT
            # The count leaves out the wall's own connection to the room.
            assert await page.text_content(f"{room_item} .room-count") == "1 方"
            await page.click(source)
            await page.click(f'.tree-camera[data-camera="{camera_id}"]')
            person = await wait_playing(page, 0, MORE_FRAMES)
            assert person["name"] == PARTICIPANT
            await wait_playing(page, 1, MORE_FRAMES, width=SUB_WIDTH)

            # Push the camera tile into the session: the participant receives
            # the main stream.
            await page.click('.wall-tile[data-index="1"] .tool-push')
            push_row = f'#push-rooms .push-room[data-room="{ROOM}"]'
            await page.wait_for_selector(push_row, timeout=timeout_ms())
            await page.click(f"{push_row} .push-send")
            await page.wait_for_selector(
                f"{push_row} .push-withdraw", timeout=timeout_ms()
            )
            notice = await page.text_content(".notice:last-child span")
            assert notice == f"已将“{name}”推送到 视频会商室"

            track_id = f"cam-{camera_id}-main"
            await wait_until(
                lambda: track_id in participant.received, 20, "the pushed camera"
            )
            info = next(t for t in participant.tracks if t["id"] == track_id)
            assert info["label"] == name
            assert info["source"] == "camera-feed"
            received = participant.received[track_id].track
            frames = [
                await asyncio.wait_for(received.recv(), scaled(20)) for _ in range(5)
            ]
            assert (frames[-1].width, frames[-1].height) == (CLIP_WIDTH, CLIP_HEIGHT)
            assert frames[-1].pts > frames[0].pts

            # Withdrawing takes it off the session again.
            await page.click(f"{push_row} .push-withdraw")
            await wait_until(
                lambda: all(t["id"] != track_id for t in participant.tracks),
                10,
                "the camera to leave the session",
            )
            await page.click("#push-dialog button[value='close']")

            # The participant leaves: its tile shows that the video ended, and the
            # camera plays on.
            await participant.close()
            await page.wait_for_function(
                TILE_STATE, arg=[0, "ended"], timeout=timeout_ms()
            )
            assert (await tile(page, 0))["message"] == f"{PARTICIPANT} 的画面已结束"
            await wait_playing(page, 1, MORE_FRAMES)

            # The same command room rejoins: its tile plays again by itself.
            rejoined = HubClient(camera_hub.ws_url, ROOM, PARTICIPANT)
            await rejoined.join()
            try:
                await rejoined.publish([(FlatVideoTrack(150), "camera")])
                again = await wait_playing(page, 0, MORE_FRAMES)
                assert again["name"] == PARTICIPANT
                assert again["message"] == ""
            finally:
                await rejoined.close()
            assert page.errors == []
            await browser.close()
    finally:
        await participant.close()


async def test_wall_assigns_task_from_camera_tile(camera_hub) -> None:
    camera_id, name = CAMERAS[2][0], CAMERAS[2][1]
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await open_wall(browser, camera_hub)
        assert await page.text_content("#command-room") == "指挥大厅"
        await page.click(f'.tree-camera[data-camera="{camera_id}"]')
        await wait_playing(page, 0, MORE_FRAMES)

        # The tile's task button opens the form with the camera attached and
        # its picture stored by the hub at that moment.
        await page.click('.wall-tile[data-index="0"] .tool-task')
        form = "#task-panel .task-form"
        await page.wait_for_selector(form, timeout=timeout_ms())
        assert await page.input_value(f"{form} .task-title-input") == f"核查：{name}"
        camera_line = f"{form} .task-camera"
        await page.wait_for_selector(
            f'{camera_line}:not([data-snapshot=""])', timeout=timeout_ms()
        )
        assert await page.text_content(f"{camera_line} .task-camera-text") == (
            f"附监控截图：{name}"
        )
        await page.select_option(f"{form} .task-unit", "puer.ninger.ninger")
        await page.click(f"{form} .task-submit")
        await page.wait_for_selector(
            "#task-panel .task-item .task-camera-link", timeout=timeout_ms()
        )

        tasks = httpx.get(
            f"{camera_hub.url}/api/tasks", params={"room": "puer-hall"}
        ).json()["tasks"]
        task = next(t for t in tasks if t["camera_id"] == camera_id)
        assert task["title"] == f"核查：{name}"
        assert task["assigner"] == "张伟"
        assert task["assignee_unit"] == "puer.ninger.ninger"
        assert task["snapshot_path"].startswith(f"snapshots/{camera_id}/")
        picture = httpx.get(f"{camera_hub.url}/{task['snapshot_path']}")
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "image/jpeg"
        assert picture.content[:2] == b"\xff\xd8"
        link = await page.get_attribute(
            "#task-panel .task-item .task-camera-link", "href"
        )
        assert link == f"/{task['snapshot_path']}"
        assert page.errors == []
        await browser.close()
