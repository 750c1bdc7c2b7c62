"""A mediation hearing in headless Chromium against a real `hub serve`.

The mediator joins with a token; the parties open invite links made through
POST /api/invites. The checks read what each person sees: the waiting room,
the waiting list, tiles with decoded video, the side room, and the lock.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser import (
    launch_chromium,
    open_conference,
    remote_tiles,
    timeout_ms,
    wait_for_frames,
)
from tests.hubproc import run_hub, scaled
from tests.sessionclient import AUTH_CONFIG, MEDIATION_ROOM, token_for

pytestmark = pytest.mark.browser

ROOM = MEDIATION_ROOM
MORE_FRAMES = 10

# True once every listed camera tile shows its placeholder (no video).
NO_VIDEO_FROM = """(peers) => peers.every((peer) => {
  const tile = document.querySelector(
    `#grid .tile[data-source="camera"][data-peer="${peer}"]`);
  return tile && !tile.querySelector(".tile-placeholder").hidden;
})"""

VIDEO_FROM = """(peers) => peers.every((peer) => {
  const tile = document.querySelector(
    `#grid .tile[data-source="camera"][data-peer="${peer}"]`);
  return tile && tile.querySelector(".tile-placeholder").hidden;
})"""


@pytest.fixture
def hub(tmp_path):
    with run_hub(tmp_path, AUTH_CONFIG) as process:
        yield process


def _invite_url(hub, mediator_token: str, name: str) -> str:
    response = httpx.post(
        f"{hub.url}/api/invites",
        json={"room": ROOM, "name": name},
        headers={"Authorization": f"Bearer {mediator_token}"},
        timeout=scaled(10),
    )
    assert response.status_code == 201, response.text
    return response.json()["url"]


async def _open_invite(browser: Browser, url: str) -> Page:
    """Follow an invite link like a party would, and join."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{url}&debug=1")
    assert await page.input_value("#room-input") == ROOM
    await page.fill("#name-input", "当事人")
    await page.click("#join-button")
    await page.wait_for_selector(
        "#moderation-panel:not([hidden])", timeout=timeout_ms()
    )
    return page


async def _peer_id(page: Page) -> str:
    return await page.evaluate("window.__hub.peerId()")


async def _frames_of(page: Page, peer: str) -> int:
    tiles = await remote_tiles(page)
    return next(t["frames"] for t in tiles if t["peer"] == peer)


async def _click_peer_action(page: Page, peer: str, action: str) -> None:
    await page.click(
        f'#moderation-panel li[data-peer="{peer}"] button[data-action="{action}"]'
    )


async def test_hearing_waits_admits_side_room_and_locks(hub) -> None:
    mediator_token = token_for("mediator", ROOM, name="调解员")
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        mediator = await open_conference(
            browser, hub.url, ROOM, "调解员", token=mediator_token
        )
        mediator_id = await _peer_id(mediator)
        panel = "#moderation-panel"
        assert await mediator.get_attribute(panel, "data-role") == "mediator"
        assert await mediator.get_attribute(panel, "data-kind") == "mediation"

        # Party A waits: no tiles, a waiting notice, listed for the mediator.
        party_a = await _open_invite(
            browser, _invite_url(hub, mediator_token, "当事人甲")
        )
        party_a_id = await _peer_id(party_a)
        assert await party_a.get_attribute(panel, "data-waiting") == "true"
        assert await party_a.is_visible(f"{panel} .mod-waiting")
        waiting_entry = f'#mod-waiting-list li[data-peer="{party_a_id}"]'
        await mediator.wait_for_selector(waiting_entry, timeout=timeout_ms())
        assert "当事人甲" in await mediator.text_content(waiting_entry)
        assert await party_a.locator("#grid .tile").count() == 0
        assert (
            await mediator.locator(f'#grid .tile[data-peer="{party_a_id}"]').count()
            == 0
        )

        # Admitted, A and the mediator see each other's video.
        await _click_peer_action(mediator, party_a_id, "admit")
        await party_a.wait_for_selector(
            f'{panel}[data-waiting="false"]', timeout=timeout_ms()
        )
        await mediator.wait_for_selector(waiting_entry, state="detached")
        await wait_for_frames(party_a, {mediator_id: MORE_FRAMES})
        await wait_for_frames(mediator, {party_a_id: MORE_FRAMES})

        party_b = await _open_invite(
            browser, _invite_url(hub, mediator_token, "当事人乙")
        )
        party_b_id = await _peer_id(party_b)
        await mediator.wait_for_selector(
            f'#mod-waiting-list li[data-peer="{party_b_id}"]', timeout=timeout_ms()
        )
        await _click_peer_action(mediator, party_b_id, "admit")
        await wait_for_frames(party_b, {mediator_id: 0, party_a_id: 0})
        await wait_for_frames(party_a, {party_b_id: 0})

        # Side room: B sees and hears neither A nor the mediator; A and the
        # mediator still see each other.
        await _click_peer_action(mediator, party_a_id, "side-room")
        await party_b.wait_for_function(
            NO_VIDEO_FROM, arg=[mediator_id, party_a_id], timeout=timeout_ms()
        )
        status = await party_b.text_content(f"{panel} .mod-side-room")
        assert "当事人甲" in status
        await party_a.wait_for_function(
            NO_VIDEO_FROM, arg=[party_b_id], timeout=timeout_ms()
        )
        assert await party_a.is_visible(f"{panel} .mod-side-room")
        before = await _frames_of(party_a, mediator_id)
        await wait_for_frames(party_a, {mediator_id: before + MORE_FRAMES})
        audio_at_b = await party_b.locator("#grid audio").count()
        assert audio_at_b == 0

        # Back together: B sees A and the mediator again.
        await _click_peer_action(mediator, party_a_id, "return")
        await party_b.wait_for_function(
            VIDEO_FROM, arg=[mediator_id, party_a_id], timeout=timeout_ms()
        )
        await party_b.wait_for_selector(f"{panel} .mod-side-room", state="detached")
        shown = {t["peer"]: t["frames"] for t in await remote_tiles(party_b)}
        await wait_for_frames(
            party_b,
            {
                mediator_id: shown[mediator_id] + MORE_FRAMES,
                party_a_id: shown[party_a_id] + MORE_FRAMES,
            },
        )

        # Locked, the hearing turns a third party away.
        await mediator.click("#mod-lock")
        for page in (mediator, party_a, party_b):
            await page.wait_for_selector(
                f'{panel}[data-locked="true"]', timeout=timeout_ms()
            )
        assert await mediator.text_content("#mod-lock") == "解除锁定"
        late = await browser.new_page()
        await late.goto(f"{_invite_url(hub, mediator_token, '当事人丙')}&debug=1")
        await late.fill("#name-input", "当事人丙")
        await late.click("#join-button")
        await late.wait_for_selector(
            "#left-view", state="visible", timeout=timeout_ms()
        )
        notice = await late.text_content("#notices")
        assert "locked" in notice
        assert await mediator.locator("#mod-waiting-list li").count() == 0

        for name, page in (("mediator", mediator), ("A", party_a), ("B", party_b)):
            assert page.errors == [], f"{name} raised: {page.errors}"
        await browser.close()
