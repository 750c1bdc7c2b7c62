"""A camera pushed into a running session plays on the conference page of
every participant, in a tile labelled with the camera's name."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.browser import launch_chromium, open_conference, remote_tiles, timeout_ms
from tests.hubproc import run_hub, scaled
from tests.rtsp_server import (
    CLIP,
    CLIP_HEIGHT,
    CLIP_WIDTH,
    GstRtspServer,
    gstreamer_available,
)
from tests.test_camera_push import CAMERA_ID, CAMERA_NAME, _cameras_file

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        gstreamer_available() is not None, reason=str(gstreamer_available())
    ),
]

CAMERA_TILE_PLAYS = """(track) => {
  const tile = document.querySelector(`#grid .tile[data-source="camera-feed"]`);
  const video = tile && tile.querySelector("video");
  return video && video.getVideoPlaybackQuality().totalVideoFrames > 5;
}"""


async def test_pushed_camera_plays_on_every_page(tmp_path):
    with GstRtspServer({"/cam": f"clip:{CLIP}"}) as rtsp:
        extra = _cameras_file(tmp_path, rtsp.url("/cam"))
        with run_hub(tmp_path, extra_config=extra) as hub:
            async with async_playwright() as playwright:
                browser = await launch_chromium(playwright)
                try:
                    pages = [
                        await open_conference(browser, hub.url, "cam-page", name)
                        for name in ("普洱市指挥中心", "澜沧县指挥室")
                    ]
                    reply = httpx.post(
                        f"{hub.url}/api/rooms/cam-page/cameras",
                        json={"camera": CAMERA_ID},
                        timeout=scaled(30),
                    )
                    assert reply.status_code == 201, reply.text
                    for page in pages:
                        await page.wait_for_function(
                            CAMERA_TILE_PLAYS, arg=None, timeout=timeout_ms(2)
                        )
                        tiles = await remote_tiles(page, "camera-feed")
                        assert len(tiles) == 1
                        assert CAMERA_NAME in tiles[0]["label"]
                        assert (tiles[0]["width"], tiles[0]["height"]) == (
                            CLIP_WIDTH,
                            CLIP_HEIGHT,
                        )
                        assert page.errors == []

                    removed = httpx.delete(
                        f"{hub.url}/api/rooms/cam-page/cameras/{CAMERA_ID}"
                    )
                    assert removed.status_code == 200
                    for page in pages:
                        await page.wait_for_function(
                            """() => !document.querySelector(
                                 '#grid .tile[data-source="camera-feed"]')""",
                            timeout=timeout_ms(),
                        )
                finally:
                    await browser.close()
