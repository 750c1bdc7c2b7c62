"""Conference page in headless Chromium against a real `hub serve`.

Each page joins through the form like a user, with Chromium's fake camera and
microphone (or a real clip as the camera), and the checks read what that user
would see and hear: named tiles, decoded video frames, received audio.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import pytest
from playwright.async_api import Page, async_playwright

from tests.browser import (
    launch_chromium,
    make_y4m,
    open_conference,
    remote_tiles,
    sample_clip,
    start_hub_again,
    stop_hub,
    timeout_ms,
    wait_for_audio_packets,
    wait_for_frames,
)

pytestmark = pytest.mark.browser

ROOM = "puer-joint"
NAMES = ["普洱市指挥中心", "思茅区指挥室", "宁洱县指挥室"]

# How many more frames and audio packets must arrive to count as "still playing".
MORE_FRAMES = 10
MORE_PACKETS = 20

CLIP_WIDTH = 640
CLIP_HEIGHT = 360
CLIP_SECONDS = 3
THUMB_WIDTH = 64
THUMB_HEIGHT = 36
# Pearson correlation of luma thumbnails above which a received frame counts
# as a frame of the clip. Chromium's default fake camera (a flat green frame
# with a moving sector) stays far below it.
MIN_CLIP_CORRELATION = 0.9

REMOTE_CAMERA_TILES = """(count) =>
  document.querySelectorAll('#grid .tile[data-source="camera"]').length === count"""

NO_TILE_OF_PEER = """(peer) =>
  document.querySelector(`#grid .tile[data-peer="${peer}"]`) === null"""

AUDIO_PACKETS_BY_SSRC = """async () => Object.fromEntries(
  (await window.__hub.getStats("down"))
    .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
    .map((s) => [String(s.ssrc), s.packetsReceived]))"""

AUDIO_PACKETS_GREW = """async ([before, more]) => {
  const now = Object.fromEntries(
    (await window.__hub.getStats("down"))
      .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
      .map((s) => [String(s.ssrc), s.packetsReceived]));
  return Object.entries(before).every(([ssrc, n]) => (now[ssrc] ?? 0) >= n + more);
}"""

# Chromium's fake microphone beeps, so decoded audio has energy above zero.
AUDIO_HAS_ENERGY = """async (streams) => {
  const energies = (await window.__hub.getStats("down"))
    .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
    .map((s) => s.totalAudioEnergy ?? 0);
  return energies.length === streams && energies.every((e) => e > 0);
}"""

PLAYING_AUDIO = """(peer) => [...document.querySelectorAll(
  `#grid .tile[data-peer="${peer}"] audio`)].filter(
    (audio) => !audio.paused && audio.srcObject !== null).length"""

THUMBNAIL = """([peer, width, height]) => {
  const video = document.querySelector(
    `#grid .tile[data-source="camera"][data-peer="${peer}"] video`);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingQuality = "high";
  context.drawImage(video, 0, 0, width, height);
  const { data } = context.getImageData(0, 0, width, height);
  const luma = [];
  for (let i = 0; i < data.length; i += 4) {
    luma.push(0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]);
  }
  return luma;
}"""


SCREEN_FRAMES = """(selector) => {
  const video = document.querySelector(`${selector} video`);
  return video !== null && video.getVideoPlaybackQuality().totalVideoFrames > 0;
}"""


def save_screenshot(path: Path) -> None:
    """Copy a screenshot to HUB_TEST_SCREENSHOT_DIR when that is set, so a
    person can look at the layout. The test's own copy stays in tmp_path."""
    target = os.environ.get("HUB_TEST_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


async def peer_id(page: Page) -> str:
    return await page.evaluate("window.__hub.peerId()")


async def frame_counts(page: Page) -> dict[str, int]:
    return {tile["peer"]: tile["frames"] for tile in await remote_tiles(page)}


async def test_three_pages_see_hear_and_leave(fresh_hub, tmp_path: Path) -> None:
    hub = fresh_hub
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        pages = [await open_conference(browser, hub.url, ROOM, n) for n in NAMES]
        ids = [await peer_id(page) for page in pages]
        assert len(set(ids)) == 3, f"peer ids are not distinct: {ids}"

        # Every page shows a named tile for each of the two others.
        for index, page in enumerate(pages):
            await page.wait_for_function(
                REMOTE_CAMERA_TILES, arg=2, timeout=timeout_ms()
            )
            tiles = await remote_tiles(page)
            others = {ids[i]: NAMES[i] for i in range(3) if i != index}
            assert {t["peer"]: t["label"] for t in tiles} == others
            assert not any(t["micMuted"] for t in tiles)

        # Every page decodes both others' video, and keeps decoding it.
        for index, page in enumerate(pages):
            others = [ids[i] for i in range(3) if i != index]
            await wait_for_frames(page, dict.fromkeys(others, 0))
            before = await frame_counts(page)
            await wait_for_frames(
                page, {peer: before[peer] + MORE_FRAMES for peer in others}
            )
            tiles = await remote_tiles(page)
            assert all(t["width"] > 0 and t["height"] > 0 for t in tiles)
            assert not any(t["placeholderShown"] for t in tiles)

        # Every page receives both others' audio, plays it, and keeps
        # receiving it.
        for index, page in enumerate(pages):
            await wait_for_audio_packets(page, streams=2, minimum=0)
            before = await page.evaluate(AUDIO_PACKETS_BY_SSRC)
            assert len(before) == 2
            await page.wait_for_function(
                AUDIO_PACKETS_GREW,
                arg=[before, MORE_PACKETS],
                timeout=timeout_ms(),
                polling=500,
            )
            await page.wait_for_function(
                AUDIO_HAS_ENERGY, arg=2, timeout=timeout_ms(), polling=500
            )
            for other in (ids[i] for i in range(3) if i != index):
                playing = await page.evaluate(PLAYING_AUDIO, other)
                assert playing == 1, f"page {index}: audio of {other} not playing"

        header = await pages[0].text_content("#participants")
        assert header == "3 方在线"
        screenshot = tmp_path / "three-participants.png"
        await pages[0].screenshot(path=str(screenshot))
        save_screenshot(screenshot)

        # The third participant leaves; the two others drop its tile.
        await pages[2].click("#leave-button")
        await pages[2].wait_for_selector("#left-view", state="visible")
        for page in pages[:2]:
            await page.wait_for_function(
                NO_TILE_OF_PEER, arg=ids[2], timeout=timeout_ms()
            )
            await page.wait_for_function(
                REMOTE_CAMERA_TILES, arg=1, timeout=timeout_ms()
            )
            assert await page.text_content("#participants") == "2 方在线"
        remaining = await remote_tiles(pages[0])
        assert [t["label"] for t in remaining] == [NAMES[1]]

        for index, page in enumerate(pages):
            assert page.errors == [], f"page {index} raised: {page.errors}"
        await browser.close()


async def test_mute_and_camera_off_marked(fresh_hub) -> None:
    hub = fresh_hub
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        speaker = await open_conference(browser, hub.url, ROOM, NAMES[0])
        listener = await open_conference(browser, hub.url, ROOM, NAMES[1])
        speaker_id = await peer_id(speaker)
        tile = f'#grid .tile[data-peer="{speaker_id}"][data-source="camera"]'
        await wait_for_frames(listener, {speaker_id: 0})

        await speaker.click("#mic-button")
        assert await speaker.text_content("#mic-button") == "打开麦克风"
        await listener.wait_for_selector(
            f'{tile}[data-mic-muted="true"]', timeout=timeout_ms()
        )
        assert await listener.is_visible(f"{tile} .tile-marker-mic")
        assert await listener.text_content(f"{tile} .tile-marker-mic") == "已静音"

        await speaker.click("#camera-button")
        await listener.wait_for_selector(
            f'{tile}[data-camera-muted="true"]', timeout=timeout_ms()
        )
        assert await listener.is_visible(f"{tile} .tile-placeholder")
        placeholder = await listener.text_content(f"{tile} .tile-placeholder-text")
        assert placeholder == "摄像头已关闭"

        await speaker.click("#mic-button")
        await speaker.click("#camera-button")
        await listener.wait_for_selector(
            f'{tile}[data-mic-muted="false"][data-camera-muted="false"]',
            timeout=timeout_ms(),
        )
        assert not await listener.is_visible(f"{tile} .tile-marker-mic")
        assert not await listener.is_visible(f"{tile} .tile-placeholder")
        await browser.close()


async def test_screen_share_adds_and_drops_tile(fresh_hub) -> None:
    hub = fresh_hub
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        presenter = await open_conference(browser, hub.url, ROOM, NAMES[0])
        viewer = await open_conference(browser, hub.url, ROOM, NAMES[1])
        presenter_id = await peer_id(presenter)
        screen_tile = f'#grid .tile[data-peer="{presenter_id}"][data-source="screen"]'

        await presenter.click("#share-button")
        await presenter.wait_for_selector(
            '#share-button[aria-pressed="true"]', timeout=timeout_ms()
        )
        assert await presenter.text_content("#share-button") == "停止共享"
        await viewer.wait_for_selector(screen_tile, timeout=timeout_ms())
        await viewer.wait_for_function(
            SCREEN_FRAMES, arg=screen_tile, timeout=timeout_ms()
        )
        label = await viewer.text_content(f"{screen_tile} .tile-name")
        assert label == f"{NAMES[0]} 的屏幕"
        # The camera keeps playing next to the screen.
        before = await frame_counts(viewer)
        await wait_for_frames(
            viewer, {presenter_id: before[presenter_id] + MORE_FRAMES}
        )

        await presenter.click("#share-button")
        assert await presenter.text_content("#share-button") == "共享屏幕"
        await viewer.wait_for_selector(
            screen_tile, state="detached", timeout=timeout_ms()
        )

        # Sharing again brings the tile back.
        await presenter.click("#share-button")
        await viewer.wait_for_selector(screen_tile, timeout=timeout_ms())
        await viewer.wait_for_function(
            SCREEN_FRAMES, arg=screen_tile, timeout=timeout_ms()
        )
        await presenter.click("#share-button")
        await viewer.wait_for_selector(
            screen_tile, state="detached", timeout=timeout_ms()
        )
        assert await viewer.is_visible(
            f'#grid .tile[data-peer="{presenter_id}"][data-source="camera"]'
        )
        await browser.close()


def luma_thumbnails(path: Path) -> list[list[float]]:
    """Return a THUMB_WIDTH x THUMB_HEIGHT luma thumbnail of every frame."""
    thumbnails = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            small = frame.reformat(THUMB_WIDTH, THUMB_HEIGHT, format="gray")
            plane = small.planes[0]
            data = bytes(plane)
            thumbnail = []
            for row in range(THUMB_HEIGHT):
                start = row * plane.line_size
                thumbnail.extend(data[start : start + THUMB_WIDTH])
            thumbnails.append([float(v) for v in thumbnail])
    return thumbnails


def correlation(a: list[float], b: list[float]) -> float:
    mean_a = sum(a) / len(a)
    mean_b = sum(b) / len(b)
    covariance = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    spread_a = sum((x - mean_a) ** 2 for x in a) ** 0.5
    spread_b = sum((y - mean_b) ** 2 for y in b) ** 0.5
    if spread_a == 0 or spread_b == 0:
        return 0.0
    return covariance / (spread_a * spread_b)


async def test_real_clip_decodes_far_side(fresh_hub, tmp_path: Path) -> None:
    clip = tmp_path / "camera.y4m"
    frames, _rate = make_y4m(sample_clip(), clip, CLIP_WIDTH, CLIP_HEIGHT, CLIP_SECONDS)
    assert frames > 0
    reference = luma_thumbnails(clip)
    hub = fresh_hub
    async with async_playwright() as playwright:
        camera_browser = await launch_chromium(
            playwright, [f"--use-file-for-fake-video-capture={clip}"]
        )
        browser = await launch_chromium(playwright)
        sender = await open_conference(camera_browser, hub.url, ROOM, NAMES[0])
        receiver = await open_conference(browser, hub.url, ROOM, NAMES[1])
        sender_id = await peer_id(sender)

        settings = await sender.evaluate(
            """() => document.querySelector('#self-area video')
                 .srcObject.getVideoTracks()[0].getSettings()"""
        )
        assert (settings["width"], settings["height"]) == (CLIP_WIDTH, CLIP_HEIGHT)

        await wait_for_frames(receiver, {sender_id: 0})
        before = await frame_counts(receiver)
        await wait_for_frames(receiver, {sender_id: before[sender_id] + MORE_FRAMES})

        # Three received frames, some way apart, each look like a frame of
        # the clip.
        for _ in range(3):
            decoded = await frame_counts(receiver)
            await wait_for_frames(receiver, {sender_id: decoded[sender_id] + 5})
            luma = await receiver.evaluate(
                THUMBNAIL, [sender_id, THUMB_WIDTH, THUMB_HEIGHT]
            )
            best = max(correlation(luma, frame) for frame in reference)
            assert best > MIN_CLIP_CORRELATION, (
                f"received frame does not match the clip (best correlation "
                f"{best:.2f}, need {MIN_CLIP_CORRELATION})"
            )
        await camera_browser.close()
        await browser.close()


CONNECTION_STATE = """(state) =>
  document.querySelector("#connection-state").dataset.state === state"""


async def test_rejoin_after_hub_restart(fresh_hub) -> None:
    hub = fresh_hub
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        pages = [await open_conference(browser, hub.url, ROOM, n) for n in NAMES[:2]]
        old_ids = [await peer_id(page) for page in pages]
        await wait_for_frames(pages[0], {old_ids[1]: 0})

        stop_hub(hub)
        for page in pages:
            await page.wait_for_function(
                CONNECTION_STATE, arg="reconnecting", timeout=timeout_ms()
            )
            assert await page.text_content("#connection-state") == "正在重连"

        with start_hub_again(hub):
            for page in pages:
                await page.wait_for_function(
                    CONNECTION_STATE, arg="connected", timeout=timeout_ms(2)
                )
            new_ids = [await peer_id(page) for page in pages]
            for index, page in enumerate(pages):
                other = new_ids[1 - index]
                await wait_for_frames(page, {other: 0})
                tiles = await remote_tiles(page)
                assert [(t["peer"], t["label"]) for t in tiles] == [
                    (other, NAMES[1 - index])
                ]
                before = await frame_counts(page)
                await wait_for_frames(page, {other: before[other] + MORE_FRAMES})
            await browser.close()


async def test_join_reports_unreachable_hub(fresh_hub) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await browser.new_page()
        await page.goto(f"{fresh_hub.url}/?room={ROOM}")
        await page.fill("#name-input", NAMES[0])
        stop_hub(fresh_hub)
        await page.click("#join-button")
        await page.wait_for_selector(
            "#left-view", state="visible", timeout=timeout_ms()
        )
        message = await page.text_content("#left-message")
        assert message == f"与会议室 {ROOM} 的连接已中断"
        notice = await page.text_content(".notice-error")
        assert notice.startswith(f"无法加入会议室 {ROOM}：无法连接会商服务")
        assert await page.is_visible("#rejoin-button")
        assert await page.text_content("#connection-state") == "连接失败"
        await browser.close()


SESSION_ERROR = """async ([room, name]) => {
  const { HubSession } = await import("/js/signaling.js");
  const url = `ws://${location.host}/ws`;
  const session = new HubSession({ url, room, name });
  const events = [];
  session.addEventListener("error", (event) => events.push(event.detail));
  await session.join();
  let rejected = null;
  try {
    await session.subscribeTracks(["t-missing"]);
  } catch (err) {
    rejected = { name: err.name, code: err.code };
  }
  const state = session.state;
  session.leave();
  return { events, rejected, state, closedState: session.state };
}"""


async def test_session_reports_hub_error(fresh_hub) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await browser.new_page()
        await page.goto(f"{fresh_hub.url}/")
        result = await page.evaluate(SESSION_ERROR, [ROOM, NAMES[0]])
        assert result["rejected"] == {"name": "HubError", "code": "not-found"}
        assert [event["code"] for event in result["events"]] == ["not-found"]
        assert "t-missing" in result["events"][0]["message"]
        assert result["state"] == "connected"
        assert result["closedState"] == "closed"
        await browser.close()


async def test_stats_page_lists_room(fresh_hub) -> None:
    hub = fresh_hub
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        first = await open_conference(browser, hub.url, ROOM, NAMES[0])
        await open_conference(browser, hub.url, ROOM, NAMES[1])
        await wait_for_frames(first, dict.fromkeys([await _only_peer(first)], 0))

        context = await browser.new_context()
        stats = await context.new_page()
        await stats.goto(f"{hub.url}/stats.html")
        room = f'.room[data-room="{ROOM}"]'
        await stats.wait_for_selector(room, timeout=timeout_ms())
        assert await stats.text_content(f"{room} h2") == f"会议室 {ROOM}"
        body = await stats.text_content(room)
        assert NAMES[0] in body
        assert NAMES[1] in body
        assert "参会方（2）" in body
        # Each participant publishes a camera and a microphone.
        assert "媒体流（4）" in body
        sources = await stats.eval_on_selector_all(
            f"{room} tr.track-row td:nth-child(4)",
            "cells => cells.map(c => c.textContent)",
        )
        assert sorted(sources) == ["摄像头", "摄像头", "麦克风", "麦克风"]
        # Each track is relayed to the one other participant.
        relayed = await stats.eval_on_selector_all(
            f"{room} tr.out-row", "rows => rows.length"
        )
        assert relayed == 4
        status = await stats.get_attribute("#stats-status", "data-level")
        assert status == "ok"
        await browser.close()


async def _only_peer(page: Page) -> str:
    await page.wait_for_function(REMOTE_CAMERA_TILES, arg=1, timeout=timeout_ms())
    tiles = await remote_tiles(page)
    return tiles[0]["peer"]


async def test_language_from_param_and_toggle(fresh_hub) -> None:
    hub = fresh_hub
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await browser.new_page()

        await page.goto(f"{hub.url}/")
        assert await page.text_content("#join-button") == "加入会商"
        assert await page.get_attribute("html", "lang") == "zh-CN"

        await page.goto(f"{hub.url}/?lang=en")
        assert await page.text_content("#join-button") == "Join"
        assert await page.get_attribute("html", "lang") == "en"

        # The choice is remembered without the parameter.
        await page.goto(f"{hub.url}/")
        assert await page.text_content("#join-button") == "Join"

        await page.click("#lang-toggle")
        assert await page.text_content("#join-button") == "加入会商"
        assert await page.text_content("#lang-toggle") == "English"
        await page.reload()
        assert await page.text_content("#join-button") == "加入会商"

        # An invalid room id is reported in the page, in the chosen language.
        await page.fill("#room-input", "room with spaces")
        await page.fill("#name-input", NAMES[0])
        await page.click("#join-button")
        error = await page.text_content("#join-error")
        assert error.startswith("会议室编号无效")
        assert await page.is_visible("#join-view")
        await browser.close()
