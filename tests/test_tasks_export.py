"""Monthly task report: CSV and XLSX contents as a dispatcher opens them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import openpyxl

from dispatch.export import SUMMARY_HEADERS, TASK_COLUMNS
from tests.conftest_db import task_body

HEADERS = [title for title, _ in TASK_COLUMNS]


async def create(api, clock, hours, **fields):
    deadline = (clock() + timedelta(hours=hours)).isoformat()
    response = await api.post(
        "/api/tasks", json=task_body(clock, deadline=deadline, **fields)
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def move(api, task_id, *statuses, by="li.na"):
    for status in statuses:
        response = await api.post(
            f"/api/tasks/{task_id}/status", json={"status": status, "by": by}
        )
        assert response.status_code == 200, response.text


async def november_tasks(api, clock):
    """Five November tasks in two units and one December task; returns ids."""
    clock.now = datetime(2025, 11, 10, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
    on_time = await create(api, clock, 4, title="巡查河道")
    late_done = await create(api, clock, 1, title="清理积水")
    late_open = await create(api, clock, 2, assignee_unit="puer.ninger")
    cancelled = await create(api, clock, 2, assignee_unit="puer.ninger")
    formula = await create(api, clock, 5, title='=HYPERLINK("http://x","点此")')

    clock.advance(minutes=30)
    await api.post(
        f"/api/tasks/{on_time}/reminders", json={"by": "chen.jun", "note": "请尽快"}
    )
    await move(api, on_time, "accepted", "in_progress")
    clock.advance(hours=1, minutes=30)  # 11:00 in Beijing
    await move(api, on_time, "done")
    await move(api, on_time, "verified", by="zhang.wei")
    await move(api, cancelled, "cancelled", by="zhang.wei")
    clock.advance(hours=1)  # 12:00 in Beijing
    await move(api, late_done, "accepted", "in_progress", "done")

    clock.now = datetime(2025, 12, 1, 2, 0, tzinfo=UTC)
    december = await create(api, clock, 4)
    return {
        "on_time": on_time,
        "late_done": late_done,
        "late_open": late_open,
        "cancelled": cancelled,
        "formula": formula,
        "december": december,
    }


async def test_export_csv_monthly(api, clock):
    ids = await november_tasks(api, clock)

    response = await api.get("/api/tasks/export.csv", params={"month": "2025-11"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        'filename="tasks-20251101-20251130.csv"'
        in response.headers["content-disposition"]
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert table[0] == HEADERS
    rows = {int(row[0]): dict(zip(HEADERS, row, strict=True)) for row in table[1:]}
    assert sorted(rows) == sorted(
        ids[name]
        for name in ("on_time", "late_done", "late_open", "cancelled", "formula")
    )

    on_time = rows[ids["on_time"]]
    assert on_time["标题"] == "巡查河道"
    assert on_time["承办单位"] == "puer.simao"
    assert on_time["优先级"] == "高"
    assert on_time["状态"] == "已核验"
    assert on_time["派发时间"] == "2025-11-10 09:00"
    assert on_time["截止时间"] == "2025-11-10 13:00"
    assert on_time["办结时间"] == "2025-11-10 11:00"
    assert on_time["核验时间"] == "2025-11-10 11:00"
    assert on_time["撤销时间"] == ""
    assert on_time["督办次数"] == "1"
    assert on_time["是否超期"] == "否"

    late_done = rows[ids["late_done"]]
    assert late_done["状态"] == "已办结"
    assert late_done["办结时间"] == "2025-11-10 12:00"
    assert late_done["是否超期"] == "是"

    assert rows[ids["late_open"]]["状态"] == "已派发"
    assert rows[ids["late_open"]]["是否超期"] == "是"
    assert rows[ids["cancelled"]]["状态"] == "已撤销"
    assert rows[ids["cancelled"]]["撤销时间"] == "2025-11-10 11:00"
    assert rows[ids["cancelled"]]["是否超期"] == ""
    assert rows[ids["formula"]]["标题"] == '\'=HYPERLINK("http://x","点此")'


async def test_export_xlsx_monthly(api, clock):
    ids = await november_tasks(api, clock)

    response = await api.get(
        "/api/tasks/export.xlsx", params={"from": "2025-11-01", "to": "2025-11-30"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["任务明细", "单位汇总", "报表信息"]

    detail = list(workbook["任务明细"].iter_rows(values_only=True))
    assert list(detail[0]) == HEADERS
    rows = {row[0]: dict(zip(HEADERS, row, strict=True)) for row in detail[1:]}
    assert len(rows) == 5
    assert ids["december"] not in rows
    on_time = rows[ids["on_time"]]
    assert on_time["状态"] == "已核验"
    assert on_time["截止时间"] == datetime(2025, 11, 10, 13, 0)
    assert on_time["办结时间"] == datetime(2025, 11, 10, 11, 0)
    assert on_time["督办次数"] == 1
    assert rows[ids["late_done"]]["是否超期"] == "是"
    formula_cell = workbook["任务明细"].cell(row=6, column=2)
    assert formula_cell.value == '=HYPERLINK("http://x","点此")'
    assert formula_cell.data_type == "s"

    summary = list(workbook["单位汇总"].iter_rows(values_only=True))
    assert list(summary[0]) == SUMMARY_HEADERS
    assert summary[1] == ("puer.ninger", 2, 0, 0, 1, 1, 1, 0.0)
    # puer.simao has 3 tasks and none cancelled. 2 are done, 1 of them on
    # time. 1 is still open and past its deadline on 1 December.
    assert summary[2][:7] == ("puer.simao", 3, 2, 1, 1, 0, 2)
    assert abs(summary[2][7] - 1 / 3) < 1e-9
    assert len(summary) == 3

    info = dict(workbook["报表信息"].iter_rows(values_only=True))
    assert info["统计起始"] == "2025-11-01 00:00"
    assert info["统计截止(不含)"] == "2025-12-01 00:00"
    assert info["时区"] == "Asia/Shanghai"
    assert info["任务数"] == 5


async def test_export_filters_by_unit(api, clock):
    ids = await november_tasks(api, clock)

    response = await api.get(
        "/api/tasks/export.csv", params={"month": "2025-11", "unit": "puer.ninger"}
    )

    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert sorted(int(row[0]) for row in table[1:]) == sorted(
        [ids["late_open"], ids["cancelled"]]
    )


async def test_export_of_empty_month(api):
    response = await api.get("/api/tasks/export.xlsx", params={"month": "2020-02"})

    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert list(workbook["任务明细"].iter_rows(values_only=True)) == [tuple(HEADERS)]
    assert len(list(workbook["单位汇总"].iter_rows())) == 1


async def test_export_rejects_bad_month(api):
    response = await api.get("/api/tasks/export.csv", params={"month": "2025-13"})

    assert response.status_code == 400
    assert "YYYY-MM" in response.json()["message"]
