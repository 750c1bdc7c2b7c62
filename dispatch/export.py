"""Reports for people: the monthly task report (CSV and XLSX) and session
attendance (CSV), with Chinese column headers and local times.

CSV files are UTF-8 with a byte order mark so that Excel on Chinese Windows
shows the headers correctly. Text that a spreadsheet would run as a formula
(starting with =, +, - or @) is written as plain text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import case, func, select

from dispatch.db import InvalidInput, Store
from dispatch.models import EventKind, Task, TaskEvent, TaskStatus
from dispatch.tasks import OPEN_STATUSES, TaskQuery, _conditions, task_to_dict

DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_EXPORT_ROWS = 100_000

STATUS_LABELS = {
    "assigned": "已派发",
    "accepted": "已签收",
    "in_progress": "处置中",
    "done": "已办结",
    "verified": "已核验",
    "cancelled": "已撤销",
}
PRIORITY_LABELS = {"low": "低", "normal": "一般", "high": "高", "urgent": "紧急"}
KIND_LABELS = {"joint": "联合会商", "mediation": "矛盾调解", "lecture": "培训讲座"}

# (header, key) pairs of the task detail table; keys name fields of the rows
# returned by `export_rows_sync` plus the derived "late" flag.
TASK_COLUMNS = [
    ("编号", "id"),
    ("标题", "title"),
    ("任务内容", "description"),
    ("派发人", "assigner"),
    ("派发指挥室", "assigner_room"),
    ("承办单位", "assignee_unit"),
    ("优先级", "priority"),
    ("状态", "status"),
    ("截止时间", "deadline"),
    ("派发时间", "created_at"),
    ("办结时间", "done_at"),
    ("核验时间", "verified_at"),
    ("撤销时间", "cancelled_at"),
    ("督办次数", "reminders"),
    ("是否超期", "late"),
    ("超期预警时间", "overdue_warned_at"),
    ("摄像机", "camera_id"),
    ("截图", "snapshot_path"),
    ("会商编号", "session_id"),
]
TIME_KEYS = {
    "deadline",
    "created_at",
    "done_at",
    "verified_at",
    "cancelled_at",
    "overdue_warned_at",
}

SUMMARY_HEADERS = [
    "承办单位",
    "任务数",
    "已办结(含已核验)",
    "已核验",
    "未办结",
    "已撤销",
    "超期数",
    "按期办结率",
]

ATTENDANCE_HEADERS = [
    "参会方编号",
    "名称",
    "单位",
    "角色",
    "加入时间",
    "离开时间",
    "在线时长(分钟)",
]

_FORMULA_START = ("=", "+", "-", "@")


def load_timezone(name: str) -> ZoneInfo:
    """Return the IANA time zone `name`, e.g. "Asia/Shanghai"."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"time zone {name!r} is unknown; use an IANA name such as 'Asia/Shanghai'",
            "tz",
        ) from None


def export_rows_sync(
    store: Store, query: TaskQuery, now: datetime, max_rows: int
) -> list[dict[str, Any]]:
    """Return the tasks matching `query` (paging ignored), oldest first, each
    with the last times it became done, verified and cancelled (aware
    datetimes or None), its number of reminders and whether it is or was
    late. Raises InvalidInput past `max_rows` rows."""
    query.check()
    conditions = _conditions(query, now)
    with store.reading() as session:
        count = session.scalar(select(func.count(Task.id)).where(*conditions)) or 0
        if count > max_rows:
            raise InvalidInput(
                f"the export would have {count} rows, more than the limit of "
                f"{max_rows}; narrow the from/to range",
                "from",
            )

        def last_time(status: TaskStatus) -> Any:
            return func.max(case((TaskEvent.to_status == status.value, TaskEvent.at)))

        reminder = case((TaskEvent.kind == EventKind.REMINDER.value, 1), else_=0)
        matching = select(Task.id).where(*conditions)
        summary = (
            select(
                TaskEvent.task_id,
                last_time(TaskStatus.DONE),
                last_time(TaskStatus.VERIFIED),
                last_time(TaskStatus.CANCELLED),
                func.sum(reminder),
            )
            .where(TaskEvent.kind != EventKind.CREATED.value)
            .where(TaskEvent.task_id.in_(matching))
            .group_by(TaskEvent.task_id)
        )
        extra = {row[0]: row[1:] for row in session.execute(summary)}
        tasks = session.scalars(select(Task).where(*conditions).order_by(Task.id))
        rows = []
        for task in tasks:
            row = task_to_dict(task, now)
            done_at, verified_at, cancelled_at, reminders = extra.get(
                task.id, (None, None, None, 0)
            )
            row.update(
                deadline=task.deadline,
                created_at=task.created_at,
                overdue_warned_at=task.overdue_warned_at,
                done_at=done_at,
                verified_at=verified_at,
                cancelled_at=cancelled_at,
                reminders=int(reminders or 0),
            )
            row["late"] = _is_late(row, now)
            rows.append(row)
    return rows


def _is_late(row: dict[str, Any], now: datetime) -> bool | None:
    """Tell whether a task missed its deadline: an open task whose deadline
    has passed, or a done task finished after it. None for cancelled tasks."""
    status = row["status"]
    if status == TaskStatus.CANCELLED:
        return None
    if status in OPEN_STATUSES:
        return bool(row["deadline"] < now)
    finished = row["done_at"] or now
    return bool(finished > row["deadline"])


async def export_rows(
    store: Store,
    query: TaskQuery,
    *,
    now: datetime | None = None,
    max_rows: int = MAX_EXPORT_ROWS,
) -> list[dict[str, Any]]:
    return await store.run(
        export_rows_sync, store, query, now or datetime.now(UTC), max_rows
    )


def _local(value: datetime | None, zone: tzinfo) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(zone).replace(tzinfo=None)


def _format_time(value: datetime | None, zone: tzinfo) -> str:
    local = _local(value, zone)
    return local.strftime("%Y-%m-%d %H:%M") if local else ""


def _cell_text(key: str, value: Any) -> Any:
    """Turn a row value into what a person reads: labels for codes, 是/否
    for flags."""
    if key == "status":
        return STATUS_LABELS.get(value, value)
    if key == "priority":
        return PRIORITY_LABELS.get(value, value)
    if key == "late":
        if value is None:
            return ""
        return "是" if value else "否"
    if value is None:
        return ""
    return value


def _safe_csv(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_safe_csv(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def tasks_csv(rows: Sequence[dict[str, Any]], timezone: str) -> bytes:
    """Render task rows from `export_rows` as CSV, times in `timezone`."""
    zone = load_timezone(timezone)
    header = [title for title, _ in TASK_COLUMNS]
    table = []
    for row in rows:
        line = []
        for _, key in TASK_COLUMNS:
            value = row[key]
            if key in TIME_KEYS:
                line.append(_format_time(value, zone))
            else:
                line.append(_cell_text(key, value))
        table.append(line)
    return _csv_bytes(header, table)


def summarize_by_unit(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Return one summary line per assignee unit (sorted by unit id) in the
    order of `SUMMARY_HEADERS`. The on-time rate is tasks done by their
    deadline over tasks not cancelled, or None when every task was
    cancelled."""
    units: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = units.setdefault(
            row["assignee_unit"],
            {"total": 0, "done": 0, "verified": 0, "open": 0, "cancelled": 0},
        )
        counts.setdefault("late", 0)
        counts.setdefault("on_time", 0)
        counts["total"] += 1
        status = row["status"]
        if status in (TaskStatus.DONE, TaskStatus.VERIFIED):
            counts["done"] += 1
            if not row["late"]:
                counts["on_time"] += 1
        if status == TaskStatus.VERIFIED:
            counts["verified"] += 1
        if status in OPEN_STATUSES:
            counts["open"] += 1
        if status == TaskStatus.CANCELLED:
            counts["cancelled"] += 1
        if row["late"]:
            counts["late"] += 1
    lines = []
    for unit in sorted(units):
        counts = units[unit]
        active = counts["total"] - counts["cancelled"]
        rate = counts["on_time"] / active if active else None
        lines.append(
            [
                unit,
                counts["total"],
                counts["done"],
                counts["verified"],
                counts["open"],
                counts["cancelled"],
                counts["late"],
                rate,
            ]
        )
    return lines


def _header_cells(sheet: WriteOnlyWorksheet, titles: Sequence[str]) -> list[Any]:
    cells = []
    for title in titles:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = Font(bold=True)
        cells.append(cell)
    return cells


def _text_cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and value.startswith("="):
        # openpyxl stores a string starting with "=" as a formula.
        cell.data_type = "s"
    return cell


def tasks_xlsx(
    rows: Sequence[dict[str, Any]],
    timezone: str,
    period: tuple[datetime | None, datetime | None],
    generated_at: datetime,
) -> bytes:
    """Render the monthly report workbook: sheet 任务明细 (one row per task,
    real date cells in `timezone`), 单位汇总 (per-unit counts and on-time
    rate) and 报表信息 (period and time zone)."""
    zone = load_timezone(timezone)
    workbook = Workbook(write_only=True)

    detail = workbook.create_sheet("任务明细")
    widths = {"标题": 30, "任务内容": 40, "承办单位": 18, "派发指挥室": 18}
    for index, (title, key) in enumerate(TASK_COLUMNS, start=1):
        width = 17 if key in TIME_KEYS else widths.get(title, 12)
        detail.column_dimensions[get_column_letter(index)].width = width
    detail.freeze_panes = "A2"
    detail.append(_header_cells(detail, [title for title, _ in TASK_COLUMNS]))
    for row in rows:
        cells = []
        for _, key in TASK_COLUMNS:
            value = row[key]
            if key in TIME_KEYS:
                cell = WriteOnlyCell(detail, value=_local(value, zone))
                cell.number_format = "yyyy-mm-dd hh:mm"
            else:
                cell = _text_cell(detail, _cell_text(key, value))
            cells.append(cell)
        detail.append(cells)

    summary = workbook.create_sheet("单位汇总")
    summary.column_dimensions["A"].width = 20
    summary.freeze_panes = "A2"
    summary.append(_header_cells(summary, SUMMARY_HEADERS))
    for line in summarize_by_unit(rows):
        cells = [_text_cell(summary, value) for value in line[:-1]]
        rate = WriteOnlyCell(summary, value=line[-1])
        rate.number_format = "0.0%"
        cells.append(rate)
        summary.append(cells)

    info = workbook.create_sheet("报表信息")
    info.column_dimensions["A"].width = 14
    info.column_dimensions["B"].width = 24
    start, end = period
    info.append(["统计起始", _format_time(start, zone) or "不限"])
    info.append(["统计截止(不含)", _format_time(end, zone) or "不限"])
    info.append(["时区", timezone])
    info.append(["生成时间", _format_time(generated_at, zone)])
    info.append(["任务数", len(rows)])

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def attendance_csv(
    session: dict[str, Any], rows: Sequence[dict[str, Any]], timezone: str
) -> bytes:
    """Render a session's attendance rows as CSV, times in `timezone`. A row
    still open is measured up to the session's end, or left blank."""
    zone = load_timezone(timezone)
    session_end = session.get("ended_at")
    table = []
    for row in rows:
        joined = datetime.fromisoformat(row["joined_at"])
        left_text = row["left_at"] or session_end
        left = datetime.fromisoformat(left_text) if left_text else None
        minutes = round((left - joined).total_seconds() / 60, 1) if left else ""
        table.append(
            [
                row["participant_id"],
                row["display_name"],
                row["unit"],
                row["role"],
                _format_time(joined, zone),
                _format_time(left, zone),
                minutes,
            ]
        )
    return _csv_bytes(ATTENDANCE_HEADERS, table)
