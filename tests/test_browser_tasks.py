"""Task panel (js/tasks.js) in headless Chromium against a real `hub serve`
with its SQLite task store.

The tests assign a task from a running session and move it through its
statuses from the assignee's room and back. They find it with its history
after a hub restart, and see overdue tasks on the wall screen.

The rooms come from the sample org tree: puer-joint belongs to the city
centre (puer) and simao-nanping-hall to 南屏镇 (puer.simao.nanping).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Page, Route, async_playwright

from tests.browser import (
    launch_chromium,
    open_conference,
    start_hub_again,
    stop_hub,
    timeout_ms,
)
from tests.hubproc import HubProcess, scaled

pytestmark = pytest.mark.browser

ASSIGNER_ROOM = "puer-joint"
ASSIGNEE_ROOM = "simao-nanping-hall"
ASSIGNEE_UNIT = "puer.simao.nanping"
ASSIGNEE_UNIT_NAME = "南屏镇综治中心"
TITLE = "核查南屏镇道路积水"

TASK_ITEM = '#task-panel .task-item[data-task="{id}"]'

# Resolves once the panel's list shows a task titled `title` with `status`.
TASK_LISTED = """([title, status]) => [...document.querySelectorAll(
    "#task-panel .task-item")].some((item) =>
  item.querySelector(".task-title").textContent === title &&
  (status === null || item.dataset.status === status))"""

EVENTS = """(id) => [...document.querySelectorAll(
    `#task-panel .task-item[data-task="${id}"] .task-event`)].map((event) => ({
  kind: event.dataset.kind,
  text: event.querySelector(".task-event-text").textContent,
  by: event.querySelector(".task-event-by").textContent,
  note: event.querySelector(".task-event-note")?.textContent ?? "",
}))"""


async def open_panel(page: Page) -> None:
    await page.click("#tasks-button")
    await page.wait_for_selector("#task-panel .task-head", timeout=timeout_ms())
    assert await page.get_attribute("#tasks-button", "aria-pressed") == "true"


async def select_tab(page: Page, tab: str) -> None:
    await page.click(f'#task-panel .task-tab[data-tab="{tab}"]')


async def wait_listed(page: Page, title: str, status: str | None = None) -> None:
    await page.wait_for_function(TASK_LISTED, arg=[title, status], timeout=timeout_ms())


async def task_id(page: Page, title: str) -> str:
    return await page.evaluate(
        """(title) => [...document.querySelectorAll("#task-panel .task-item")]
             .find((item) => item.querySelector(".task-title").textContent === title)
             .dataset.task""",
        title,
    )


async def step(page: Page, task: str, name: str, note: str | None = None) -> None:
    item = TASK_ITEM.format(id=task)
    await page.click(f'{item} .task-action[data-step="{name}"]')
    if note is not None:
        await page.fill(f"{item} .task-note", note)
        await page.click(f"{item} .task-note-confirm")


async def assign(page: Page, title: str, unit: str) -> None:
    """Fill and send the assign form: a title, the unit, the 4-hour preset
    and high priority."""
    await page.click("#task-panel .task-new")
    await page.fill("#task-panel .task-title-input", title)
    await page.select_option("#task-panel .task-unit", unit)
    await page.click('#task-panel .task-preset[data-hours="4"]')
    await page.check('#task-panel input[name="priority"][value="high"]')
    await page.fill(
        "#task-panel .task-description", "请于截止时间前到场核查并回传照片。"
    )
    await page.click("#task-panel .task-submit")


def api_tasks(hub: HubProcess, **params: str) -> list[dict]:
    return httpx.get(f"{hub.url}/api/tasks", params=params).json()["tasks"]


def require_task_routes(hub: HubProcess) -> None:
    reply = httpx.get(f"{hub.url}/api/tasks")
    if reply.status_code == 404 and "json" not in reply.headers.get("content-type", ""):
        pytest.fail("the hub does not serve /api/tasks; hub/app.py must mount dispatch")


async def test_task_flow_survives_hub_restart(fresh_hub) -> None:
    hub = fresh_hub
    require_task_routes(hub)
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        assigner = await open_conference(browser, hub.url, ASSIGNER_ROOM, "张伟")
        assignee = await open_conference(browser, hub.url, ASSIGNEE_ROOM, "李娜")
        await open_panel(assigner)
        await open_panel(assignee)

        # The city centre assigns a task to 南屏镇 in a few clicks.
        units = await assigner.eval_on_selector_all(
            "#task-panel .task-unit option", "options => options.map(o => o.value)"
        )
        assert ASSIGNEE_UNIT in units
        await assign(assigner, TITLE, ASSIGNEE_UNIT)
        await wait_listed(assigner, TITLE, "assigned")
        assert (
            await assigner.get_attribute("#task-panel .task-tab.selected", "data-tab")
            == "assigned"
        )
        notice = await assigner.text_content(".notice-info span")
        assert notice == f"已派发任务“{TITLE}”给 {ASSIGNEE_UNIT_NAME}"
        task = await task_id(assigner, TITLE)
        item = TASK_ITEM.format(id=task)
        assert await assigner.text_content(f"{item} .task-status") == "已派发"
        assert await assigner.text_content(f"{item} .task-priority") == "高"
        assert await assigner.text_content(f"{item} .task-party") == (
            f"承办：{ASSIGNEE_UNIT_NAME}"
        )

        stored = httpx.get(f"{hub.url}/api/tasks/{task}").json()
        assert stored["assigner"] == "张伟"
        assert stored["assigner_room"] == ASSIGNER_ROOM
        assert stored["assignee_unit"] == ASSIGNEE_UNIT
        assert stored["priority"] == "high"
        deadline = datetime.fromisoformat(stored["deadline"])
        assert timedelta(hours=3.9) < deadline - datetime.now(UTC) < timedelta(hours=4)

        # 南屏镇 sees the task it owes, and moves it on.
        await wait_listed(assignee, TITLE, "assigned")
        item_b = TASK_ITEM.format(id=task)
        assert await assignee.text_content(f"{item_b} .task-party") == (
            "派发：视频会商室（张伟）"
        )
        for name, status in (
            ("accepted", "accepted"),
            ("in_progress", "in_progress"),
            ("done", "done"),
        ):
            await step(assignee, task, name)
            await wait_listed(assignee, TITLE, status)

        # The assigner sees it done, returns it with a note; it comes back
        # done and is verified.
        await wait_listed(assigner, TITLE, "done")
        await step(assigner, task, "return", "请补充现场照片")
        await wait_listed(assigner, TITLE, "in_progress")
        await wait_listed(assignee, TITLE, "in_progress")
        await step(assignee, task, "done")
        await wait_listed(assigner, TITLE, "done")
        await step(assigner, task, "verified")
        await wait_listed(assigner, TITLE, "verified")
        assert await assigner.text_content(f"{item} .task-status") == "已核验"

        expected = [
            ("created", "派发", "张伟", ""),
            ("status", "已派发 → 已签收", "李娜", ""),
            ("status", "已签收 → 处置中", "李娜", ""),
            ("status", "处置中 → 已办结", "李娜", ""),
            ("status", "已办结 → 处置中", "张伟", "请补充现场照片"),
            ("status", "处置中 → 已办结", "李娜", ""),
            ("status", "已办结 → 已核验", "张伟", ""),
        ]
        await assigner.click(f"{item} .task-history-toggle")
        await assigner.wait_for_selector(f"{item} .task-event", timeout=timeout_ms())
        events = await assigner.evaluate(EVENTS, task)
        assert [(e["kind"], e["text"], e["by"], e["note"]) for e in events] == expected

        # After a restart on the same data folder, a new page of the
        # assigner's room finds the task with its whole history.
        stop_hub(hub)
        with start_hub_again(hub):
            again = await open_conference(browser, hub.url, ASSIGNER_ROOM, "王强")
            await open_panel(again)
            await select_tab(again, "assigned")
            await wait_listed(again, TITLE, "verified")
            await again.click(f"{item} .task-history-toggle")
            await again.wait_for_selector(f"{item} .task-event", timeout=timeout_ms())
            events = await again.evaluate(EVENTS, task)
            assert [(e["kind"], e["text"], e["by"], e["note"]) for e in events] == (
                expected
            )
            for page in (assigner, assignee, again):
                assert page.errors == [], page.errors
            await browser.close()


async def test_task_create_retry_makes_one_task(fresh_hub) -> None:
    """The first create reaches the hub but its response is lost. The panel
    retries with the same Idempotency-Key, and one task exists."""
    hub = fresh_hub
    require_task_routes(hub)
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await open_conference(browser, hub.url, ASSIGNER_ROOM, "张伟")
        await open_panel(page)

        keys: list[str] = []

        async def lose_first_answer(route: Route) -> None:
            if route.request.method != "POST":
                await route.continue_()
                return
            keys.append(route.request.headers["idempotency-key"])
            if len(keys) == 1:
                # The hub stores the task; the browser never hears back.
                await route.fetch()
                await route.abort("connectionreset")
                return
            await route.continue_()

        await page.route("**/api/tasks?*", lose_first_answer)
        await assign(page, "核查思茅港镇码头人员聚集", "puer.simao.simaogang")
        await wait_listed(page, "核查思茅港镇码头人员聚集", "assigned")
        assert len(keys) == 2
        assert keys[0] == keys[1]
        assert len(keys[0]) == 36
        assert await page.is_hidden("#task-panel .task-form")
        listed = api_tasks(hub, room=ASSIGNER_ROOM)
        assert [t["title"] for t in listed] == ["核查思茅港镇码头人员聚集"]

        # A second task gets a new key.
        await assign(page, "核查六顺镇山体滑坡隐患", "puer.simao.liushun")
        await wait_listed(page, "核查六顺镇山体滑坡隐患", "assigned")
        assert len(keys) == 3
        assert keys[2] != keys[0]
        assert len(api_tasks(hub, room=ASSIGNER_ROOM)) == 2
        assert page.errors == []
        await browser.close()


async def test_overdue_task_on_wall_and_panel(fresh_hub) -> None:
    hub = fresh_hub
    require_task_routes(hub)
    deadline = datetime.now(UTC) + timedelta(seconds=2)
    created = httpx.post(
        f"{hub.url}/api/tasks",
        json={
            "title": "排查宁洱镇矛盾纠纷",
            "assigner": "张伟",
            "assigner_room": ASSIGNER_ROOM,
            "assignee_unit": ASSIGNEE_UNIT,
            "deadline": deadline.isoformat(),
            "priority": "urgent",
        },
    )
    assert created.status_code == 201, created.text
    task = created.json()["id"]
    limit = time.monotonic() + scaled(30)
    while not api_tasks(hub, overdue="true"):
        if time.monotonic() > limit:
            raise AssertionError("the task did not become overdue within 30 s")
        await asyncio.sleep(0.2)

    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        context = await browser.new_context(viewport={"width": 1920, "height": 1080})
        wall = await context.new_page()
        await wall.goto(f"{hub.url}/wall.html?lang=zh")
        entry = f'#overdue-list .overdue-item[data-task="{task}"]'
        await wall.wait_for_selector(entry, timeout=timeout_ms())
        assert (
            await wall.text_content(f"{entry} .overdue-title") == "排查宁洱镇矛盾纠纷"
        )
        assert await wall.text_content(f"{entry} .overdue-unit") == ASSIGNEE_UNIT_NAME
        assert (await wall.text_content(f"{entry} .overdue-for")).startswith("已超期")
        assert await wall.text_content("#overdue-count") == "1"

        # The assignee's panel marks it and counts it on the task button.
        page = await open_conference(browser, hub.url, ASSIGNEE_ROOM, "李娜")
        await page.wait_for_selector(
            '#tasks-button[data-overdue="1"]', state="attached", timeout=timeout_ms()
        )
        await open_panel(page)
        item = TASK_ITEM.format(id=task)
        await page.wait_for_selector(
            f'{item}[data-overdue="true"]', timeout=timeout_ms()
        )
        assert (await page.text_content(f"{item} .task-overdue")).startswith("已超期")
        assert await page.text_content("#task-panel .task-overdue-badge") == "1 项超期"
        await browser.close()
