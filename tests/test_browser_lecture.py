"""A lecture in headless Chromium against a real `hub serve`.

The trainer teaches; two viewers watch. A viewer is silent until it raises a
hand and the trainer gives it the floor; then the other viewer receives its
audio, and loses it again when the trainer takes the floor back.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, async_playwright

from tests.browser import (
    audio_packets,
    launch_chromium,
    open_conference,
    timeout_ms,
    wait_for_audio_packets,
    wait_for_frames,
)
from tests.hubproc import run_hub
from tests.sessionclient import AUTH_CONFIG, LECTURE_ROOM, token_for

pytestmark = pytest.mark.browser

ROOM = LECTURE_ROOM
MORE_PACKETS = 20

# Inbound audio packet counts on the down connection, by the mid of the
# media section, so a test can tell one speaker from another.
AUDIO_BY_MID = """async () => Object.fromEntries(
  (await window.__hub.getStats("down"))
    .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
    .map((s) => [s.mid, s.packetsReceived]))"""

# Resolves once the audio element in `peer`'s tile is playing a live track.
PLAYING_AUDIO_OF = """(peer) => [...document.querySelectorAll(
  `#grid .tile[data-peer="${peer}"] audio`)].some(
    (audio) => !audio.paused && audio.srcObject !== null
      && audio.srcObject.getAudioTracks()[0]?.readyState === "live")"""

NO_AUDIO_OF = """(peer) => document.querySelectorAll(
  `#grid .tile[data-peer="${peer}"] audio`).length === 0"""


@pytest.fixture
def hub(tmp_path):
    with run_hub(tmp_path, AUTH_CONFIG) as process:
        yield process


async def _peer_id(page: Page) -> str:
    return await page.evaluate("window.__hub.peerId()")


async def test_viewer_heard_after_floor(hub) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        trainer = await open_conference(
            browser,
            hub.url,
            ROOM,
            "主讲人",
            token=token_for("trainer", ROOM, name="主讲人"),
        )
        asker = await open_conference(
            browser,
            hub.url,
            ROOM,
            "思茅区学员",
            token=token_for("viewer", ROOM, name="思茅区学员"),
        )
        listener = await open_conference(
            browser,
            hub.url,
            ROOM,
            "宁洱县学员",
            token=token_for("viewer", ROOM, name="宁洱县学员"),
        )
        trainer_id = await _peer_id(trainer)
        asker_id = await _peer_id(asker)
        panel = "#moderation-panel"
        assert await asker.get_attribute(panel, "data-role") == "viewer"
        assert await asker.get_attribute(panel, "data-kind") == "lecture"

        # Before the floor only the trainer is heard and seen.
        await wait_for_frames(listener, {trainer_id: 5})
        await wait_for_audio_packets(listener, streams=1, minimum=MORE_PACKETS)
        assert len(await audio_packets(listener)) == 1
        assert len(await audio_packets(trainer)) == 0
        asker_tile = f'#grid .tile[data-peer="{asker_id}"]'
        assert await listener.is_visible(f"{asker_tile} .tile-placeholder")
        # The viewer's page reported no refused publish to its user.
        assert await asker.locator(".notice-error").count() == 0

        # The raised hand shows in the trainer's list.
        await asker.click("#mod-hand")
        await trainer.wait_for_selector(
            f'{panel} li[data-peer="{asker_id}"][data-hand="true"]',
            timeout=timeout_ms(),
        )
        assert await asker.text_content("#mod-hand") == "放下手"

        # With the floor, the listener and the trainer receive the asker.
        await trainer.click(
            f'{panel} li[data-peer="{asker_id}"] button[data-action="give-floor"]'
        )
        await asker.wait_for_selector(f"{panel} .mod-floor", timeout=timeout_ms())
        await listener.wait_for_function(
            PLAYING_AUDIO_OF, arg=asker_id, timeout=timeout_ms()
        )
        await wait_for_audio_packets(listener, streams=2, minimum=MORE_PACKETS)
        await wait_for_audio_packets(trainer, streams=1, minimum=MORE_PACKETS)
        await wait_for_frames(listener, {asker_id: 5})
        before = await listener.evaluate(AUDIO_BY_MID)
        await listener.wait_for_function(
            """async ([before, more]) => {
              const now = Object.fromEntries(
                (await window.__hub.getStats("down"))
                  .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
                  .map((s) => [s.mid, s.packetsReceived]));
              return Object.entries(before).every(
                ([mid, n]) => (now[mid] ?? 0) >= n + more);
            }""",
            arg=[before, MORE_PACKETS],
            timeout=timeout_ms(),
            polling=500,
        )
        floor_line = await listener.text_content(f"{panel} .mod-floor")
        assert "思茅区学员" in floor_line

        # Taking the floor back silences the asker for the others.
        await trainer.click(
            f'{panel} li[data-peer="{asker_id}"] button[data-action="take-floor"]'
        )
        await listener.wait_for_function(
            NO_AUDIO_OF, arg=asker_id, timeout=timeout_ms()
        )
        await listener.wait_for_selector(
            f"{panel} .mod-floor", state="detached", timeout=timeout_ms()
        )

        for name, page in (
            ("trainer", trainer),
            ("asker", asker),
            ("listener", listener),
        ):
            assert page.errors == [], f"{name} raised: {page.errors}"
        await browser.close()
