// Task panel (调度任务): assign a task, list what this room owes and what it
// assigned, move tasks through their statuses, and warn about overdue ones.
// Used beside the video on the conference page and on the wall screen.
//
// It talks to the dispatch HTTP API under /api/tasks (docs/api.md) and reads
// the organisation tree from /api/org. It refreshes by polling, after each
// change it makes, and on the live "task-event" messages of the sessions it
// is attached to (docs/protocol.md).

import { currentLanguage, onLanguageChange, t } from "./i18n.js";

export const STATUSES = ["assigned", "accepted", "in_progress", "done", "verified", "cancelled"];
export const OPEN_STATUSES = ["assigned", "accepted", "in_progress"];
export const PRIORITIES = ["low", "normal", "high", "urgent"];

// Steps the assignee takes, and steps the assigner takes, from each status
// (the flow in docs/api.md). "return" is the move from done back to
// in_progress, which needs a note.
const ASSIGNEE_STEPS = {
  assigned: ["accepted"],
  accepted: ["in_progress"],
  in_progress: ["done"],
};
const ASSIGNER_STEPS = {
  assigned: ["remind", "cancelled"],
  accepted: ["remind", "cancelled"],
  in_progress: ["remind", "cancelled"],
  done: ["verified", "return", "cancelled"],
};
const NOTE_REQUIRED = new Set(["return", "remind"]);

const PANEL_REFRESH_MS = 15_000;
const OVERDUE_REFRESH_MS = 30_000;
// Delays before retrying a create that failed with a network error or 503.
// The Idempotency-Key stays the same, so a retry never makes a second task.
const CREATE_RETRY_DELAYS_MS = [1_000, 2_000, 4_000];
const LIST_LIMIT = 100;
const DEFAULT_DEADLINE_HOURS = 24;
const DEADLINE_PRESETS_HOURS = [1, 4, 24];
const MAX_TITLE_LENGTH = 200;
const MAX_DESCRIPTION_LENGTH = 4000;
const MAX_PERSON_LENGTH = 64;

// Bearer token sent with every API request, for hubs with auth.required.
let apiToken = "";

/** Sets the bearer token of later API requests ("" sends none). */
export function setApiToken(token) {
  apiToken = typeof token === "string" ? token : "";
}

/** Headers of an API request: `extra` and the bearer token, if set. */
export function apiHeaders(extra = {}) {
  return apiToken ? { ...extra, Authorization: `Bearer ${apiToken}` } : { ...extra };
}

/** An error response of the dispatch API, or a failure to reach it (status 0). */
export class TaskApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "TaskApiError";
    this.status = status;
    this.code = code;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Returns a random UUID for the Idempotency-Key header. crypto.randomUUID
 * exists only in secure contexts (https, localhost), while a command room may
 * open the hub over plain http on the LAN, so that case builds a version 4
 * UUID from crypto.getRandomValues.
 */
export function newIdempotencyKey() {
  if (typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  const groups = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return [...groups, hex.slice(20)].join("-");
}

async function requestJson(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: apiHeaders(headers) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new TaskApiError(0, "network", `${method} ${path} failed: ${err.message}`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // A body that is not JSON: only the status is known.
  }
  if (!response.ok) {
    if (response.status === 404 && data === null) {
      // The dispatch API returns a JSON 404 for unknown paths, so a 404
      // without JSON means the hub serves no task routes at all.
      throw new TaskApiError(404, "tasks-unavailable", `${path} is not served by this hub`);
    }
    throw new TaskApiError(
      response.status,
      data?.error ?? `http-${response.status}`,
      data?.message ?? `${method} ${path} failed with HTTP ${response.status}`,
    );
  }
  return data;
}

function retryable(err) {
  return err instanceof TaskApiError && (err.status === 0 || err.status >= 502);
}

/** Client of the dispatch API's task routes (docs/api.md). */
export const taskApi = {
  list(params) {
    const query = new URLSearchParams(params);
    return requestJson("GET", `/api/tasks?${query}`);
  },

  get(id) {
    return requestJson("GET", `/api/tasks/${encodeURIComponent(id)}`);
  },

  /**
   * Creates a task. A network failure or a 503 is retried with the same
   * `key`, so the hub stores the task once whichever attempt reached it.
   */
  async create(body, key) {
    // The hub checks the assigner's role in this room when tokens are required.
    const path = `/api/tasks?${new URLSearchParams({ room: body.assigner_room })}`;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await requestJson("POST", path, {
          body,
          headers: { "Idempotency-Key": key },
        });
      } catch (err) {
        if (!retryable(err) || attempt >= CREATE_RETRY_DELAYS_MS.length) {
          throw err;
        }
        await sleep(CREATE_RETRY_DELAYS_MS[attempt]);
      }
    }
  },

  changeStatus(id, body) {
    return requestJson("POST", `/api/tasks/${encodeURIComponent(id)}/status`, { body });
  },

  remind(id, body) {
    return requestJson("POST", `/api/tasks/${encodeURIComponent(id)}/reminders`, { body });
  },

  /**
   * Stores the camera's current picture on the hub; returns {snapshot_path,
   * url} to attach to a task.
   */
  snapshot(cameraId) {
    return requestJson("POST", `/api/cameras/${encodeURIComponent(cameraId)}/snapshots`);
  },
};

/** Text for a TaskApiError or any other failure, in the current language. */
export function describeTaskError(err) {
  if (err instanceof TaskApiError) {
    if (err.code === "tasks-unavailable") {
      return t("tasks.unavailable");
    }
    if (err.status === 0) {
      return t("tasks.networkFailed", { reason: err.message });
    }
    return err.message;
  }
  return err?.message ?? String(err);
}

// ---- organisation tree ----

/** The units of /api/org in tree order, with lookups by unit and room id. */
export class OrgTree {
  constructor({ root = null, units = [] } = {}) {
    this.root = root;
    this.byId = new Map(units.map((unit) => [unit.id, unit]));
    this.children = new Map();
    for (const unit of units) {
      const parent = this.byId.has(unit.parent) ? unit.parent : null;
      if (!this.children.has(parent)) {
        this.children.set(parent, []);
      }
      this.children.get(parent).push(unit);
    }
    this.roomUnits = new Map();
    for (const unit of units) {
      for (const room of unit.rooms ?? []) {
        this.roomUnits.set(room.id, { unit, room });
      }
    }
    // Depth-first order, each unit with its depth, for selects and trees.
    this.ordered = [];
    const visit = (parent, depth) => {
      for (const unit of this.children.get(parent) ?? []) {
        this.ordered.push({ unit, depth });
        visit(unit.id, depth + 1);
      }
    };
    visit(null, 0);
  }

  unitName(id) {
    return this.byId.get(id)?.name ?? id;
  }

  /** Returns the unit that owns room `roomId`, or null for a room outside the tree. */
  unitOfRoom(roomId) {
    return this.roomUnits.get(roomId)?.unit ?? null;
  }

  roomName(roomId) {
    return this.roomUnits.get(roomId)?.room.name ?? null;
  }
}

/** Fetches /api/org. A hub without an org tree gives an empty tree. */
export async function loadOrg() {
  const response = await fetch("/api/org", { headers: apiHeaders() });
  if (!response.ok) {
    throw new Error(`GET /api/org failed with HTTP ${response.status}`);
  }
  return new OrgTree(await response.json());
}

// ---- formatting ----

function locale() {
  return currentLanguage() === "zh" ? "zh-CN" : "en-GB";
}

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso ?? "";
  }
  return new Intl.DateTimeFormat(locale(), {
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  }).format(date);
}

/** "3 小时" or "25 分钟": how long ago the deadline passed. */
export function formatOverdueFor(deadline, now = Date.now()) {
  const minutes = Math.max(1, Math.round((now - new Date(deadline).getTime()) / 60_000));
  if (minutes < 60) {
    return t("tasks.minutes", { count: minutes });
  }
  const hours = Math.round(minutes / 60);
  if (hours < 48) {
    return t("tasks.hours", { count: hours });
  }
  return t("tasks.days", { count: Math.round(hours / 24) });
}

/** True when the task is open and its deadline has passed by `now`. */
export function isOverdue(task, now = Date.now()) {
  return OPEN_STATUSES.includes(task.status) && new Date(task.deadline).getTime() < now;
}

/** Formats a Date as ISO 8601 in local time with its UTC offset. */
function localIso(date) {
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:00` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  );
}

/** Value for an <input type="datetime-local">. */
function localInputValue(date) {
  return localIso(date).slice(0, 16);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function priorityBadge(priority) {
  return element("span", `task-priority priority-${priority}`, t(`tasks.priority.${priority}`));
}

function button(className, text, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

// ---- task panel ----

/**
 * The task panel of one command room. `room` is the room id the tasks are
 * assigned from (assigner_room), and its unit in the org tree owes tasks.
 * `person` is who acts (assigner, `by`).
 */
export class TaskPanel {
  #container;
  #room;
  #person;
  #notify;
  #org = new OrgTree();
  #tab = "owed";
  #owed = [];
  #assigned = [];
  #history = new Map(); // task id -> events, for the expanded tasks
  #expanded = new Set();
  #warnedOverdue = new Set();
  #firstLoad = true;
  #timer = null;
  #unsubscribeLanguage = null;
  #formKey = null;
  #camera = null; // {id, name} attached to the form
  #snapshot = null; // {snapshot_path, url} stored for the attached camera
  #onOverdue;
  #sessionId = null;
  #busy = false;
  #unavailable = false;
  #elements = {};

  /**
   * @param {object} options
   * @param {HTMLElement} options.container  element the panel is drawn in
   * @param {string} options.room  this room's id
   * @param {string} options.person  display name of the person acting
   * @param {(text: string, level: string) => void} [options.notify]  shows
   *   a notice ("info", "warning" or "error")
   * @param {OrgTree} [options.org]  the org tree, fetched when not given
   * @param {(count: number) => void} [options.onOverdue]  called with the
   *   number of overdue tasks after each change
   */
  constructor({ container, room, person, notify = () => {}, org = null, onOverdue = () => {} }) {
    this.#container = container;
    this.#room = room;
    this.#person = String(person).slice(0, MAX_PERSON_LENGTH);
    this.#notify = notify;
    this.#onOverdue = onOverdue;
    if (org) {
      this.#org = org;
    }
    this.#build();
  }

  get room() {
    return this.#room;
  }

  /** Fetches the org tree if needed, draws the panel and starts polling. */
  async start() {
    this.#unsubscribeLanguage = onLanguageChange(() => this.#relabel());
    if (this.#org.byId.size === 0) {
      try {
        this.#org = await loadOrg();
      } catch (err) {
        this.#notify(t("tasks.orgFailed", { reason: err.message }), "warning");
      }
    }
    this.#fillUnits();
    this.#relabel();
    await this.refresh();
    this.#timer = setInterval(() => this.refresh(), PANEL_REFRESH_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#unsubscribeLanguage?.();
    this.#container.replaceChildren();
  }

  /**
   * Applies the "task-event" messages `session` (a HubSession) receives.
   * Returns a function that detaches it.
   */
  attachSession(session) {
    return session.onMessage((message) => {
      if (message.type === "task-event") {
        this.applyTaskEvent(message);
      }
    });
  }

  /** Sets the session id sent with new tasks (a records session, or null). */
  setSessionId(id) {
    this.#sessionId = Number.isInteger(id) ? id : null;
  }

  /**
   * Opens the assign form. `camera` ({id, name}) attaches a camera: the hub
   * stores its picture at this moment, and the task refers to that file.
   */
  openForm({ camera = null, title = "" } = {}) {
    const el = this.#elements;
    if (camera?.id !== this.#camera?.id) {
      this.#snapshot = null;
    }
    this.#camera = camera;
    if (this.#formKey === null) {
      this.#formKey = newIdempotencyKey();
    }
    if (title) {
      el.title.value = title;
    }
    this.#renderCamera();
    el.form.hidden = false;
    el.newButton.hidden = true;
    el.title.focus();
    if (camera && this.#snapshot === null) {
      this.#takeSnapshot(camera);
    }
  }

  closeForm() {
    const el = this.#elements;
    el.form.reset();
    el.form.hidden = true;
    el.newButton.hidden = false;
    el.formError.hidden = true;
    this.#camera = null;
    this.#snapshot = null;
    this.#formKey = null;
    this.#setDeadline(DEFAULT_DEADLINE_HOURS);
  }

  /** Re-reads both task lists. Errors show in the panel; polling goes on. */
  async refresh() {
    const unit = this.#org.unitOfRoom(this.#room);
    try {
      const [assigned, owed] = await Promise.all([
        taskApi.list({ room: this.#room, limit: LIST_LIMIT }),
        unit ? taskApi.list({ unit: unit.id, limit: LIST_LIMIT }) : { tasks: [] },
      ]);
      this.#assigned = assigned.tasks;
      this.#owed = owed.tasks;
      this.#unavailable = false;
      this.#elements.status.hidden = true;
    } catch (err) {
      this.#unavailable = err.code === "tasks-unavailable";
      this.#elements.status.textContent = describeTaskError(err);
      this.#elements.status.hidden = false;
    }
    for (const id of this.#expanded) {
      await this.#loadHistory(id);
    }
    this.#warnNewlyOverdue();
    this.#render();
  }

  /** Applies a live "task-event" message: {task, event}. */
  applyTaskEvent(message) {
    const task = message?.task;
    if (!task || typeof task.id !== "number") {
      return;
    }
    const unit = this.#org.unitOfRoom(this.#room);
    const replace = (list, belongs) => {
      const index = list.findIndex((item) => item.id === task.id);
      if (index >= 0) {
        list[index] = task;
      } else if (belongs) {
        list.unshift(task);
      }
    };
    replace(this.#assigned, task.assigner_room === this.#room);
    replace(this.#owed, unit !== null && task.assignee_unit === unit.id);
    if (message.event && this.#history.has(task.id)) {
      this.#history.get(task.id).push(message.event);
    }
    if (message.event?.kind === "reminder" && unit && task.assignee_unit === unit.id) {
      this.#notify(t("tasks.reminded", { title: task.title, note: message.event.note }), "warning");
    }
    this.#warnNewlyOverdue();
    this.#render();
  }

  // ---- building ----

  #build() {
    const el = this.#elements;
    const root = this.#container;
    root.replaceChildren();
    root.classList.add("task-panel");

    const head = element("div", "task-head");
    el.heading = element("h2", "task-heading");
    el.overdueBadge = element("span", "task-overdue-badge");
    el.overdueBadge.hidden = true;
    el.newButton = button("task-new primary", "", () => this.openForm());
    head.append(el.heading, el.overdueBadge, el.newButton);

    el.form = this.#buildForm();
    el.form.hidden = true;

    const tabs = element("div", "task-tabs");
    tabs.setAttribute("role", "tablist");
    el.tabOwed = button("task-tab", "", () => this.#selectTab("owed"));
    el.tabAssigned = button("task-tab", "", () => this.#selectTab("assigned"));
    for (const [tab, name] of [
      [el.tabOwed, "owed"],
      [el.tabAssigned, "assigned"],
    ]) {
      tab.dataset.tab = name;
      tab.setAttribute("role", "tab");
    }
    tabs.append(el.tabOwed, el.tabAssigned);

    el.status = element("p", "task-status-line");
    el.status.setAttribute("role", "status");
    el.status.hidden = true;
    el.list = element("ul", "task-list");
    el.empty = element("p", "task-empty");
    root.append(head, el.form, tabs, el.status, el.list, el.empty);
  }

  #buildForm() {
    const el = this.#elements;
    const form = element("form", "task-form");
    form.noValidate = true;

    const field = (labelKey, control) => {
      const label = element("label", "task-field");
      const caption = element("span", "task-field-label");
      caption.dataset.key = labelKey;
      label.append(caption, control);
      return label;
    };

    el.title = element("input", "task-title-input");
    el.title.name = "title";
    el.title.maxLength = MAX_TITLE_LENGTH;
    el.title.required = true;
    el.title.autocomplete = "off";

    el.unit = element("select", "task-unit");
    el.unit.name = "assignee_unit";
    el.unit.required = true;

    el.deadline = element("input", "task-deadline");
    el.deadline.type = "datetime-local";
    el.deadline.name = "deadline";
    el.deadline.required = true;
    el.presets = element("div", "task-presets");
    for (const hours of DEADLINE_PRESETS_HOURS) {
      const preset = button("task-preset", "", () => this.#setDeadline(hours));
      preset.dataset.hours = String(hours);
      el.presets.append(preset);
    }
    const deadlineRow = element("div", "task-deadline-row");
    deadlineRow.append(el.deadline, el.presets);

    el.priority = element("div", "task-priorities");
    el.priority.setAttribute("role", "radiogroup");
    for (const priority of PRIORITIES) {
      const option = element("label", `task-priority-option priority-${priority}`);
      const radio = element("input");
      radio.type = "radio";
      radio.name = "priority";
      radio.value = priority;
      radio.checked = priority === "normal";
      const text = element("span");
      text.dataset.priority = priority;
      option.append(radio, text);
      el.priority.append(option);
    }

    el.description = element("textarea", "task-description");
    el.description.name = "description";
    el.description.rows = 2;
    el.description.maxLength = MAX_DESCRIPTION_LENGTH;

    el.cameraLine = element("div", "task-camera");
    el.cameraText = element("span", "task-camera-text");
    el.cameraRemove = button("task-camera-remove link-button", "×", () => {
      this.#camera = null;
      this.#snapshot = null;
      this.#renderCamera();
    });
    el.snapshotImage = element("img", "task-snapshot");
    el.snapshotImage.alt = "";
    el.snapshotImage.hidden = true;
    el.cameraLine.append(el.snapshotImage, el.cameraText, el.cameraRemove);
    el.cameraLine.hidden = true;

    el.formError = element("p", "form-error task-form-error");
    el.formError.setAttribute("role", "alert");
    el.formError.hidden = true;

    el.submit = element("button", "primary task-submit");
    el.submit.type = "submit";
    el.cancel = button("task-cancel", "", () => this.closeForm());
    const actions = element("div", "task-form-actions");
    actions.append(el.submit, el.cancel);

    form.append(
      field("tasks.field.title", el.title),
      field("tasks.field.unit", el.unit),
      field("tasks.field.deadline", deadlineRow),
      field("tasks.field.priority", el.priority),
      field("tasks.field.description", el.description),
      el.cameraLine,
      el.formError,
      actions,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit();
    });
    this.#setDeadline(DEFAULT_DEADLINE_HOURS);
    return form;
  }

  #fillUnits() {
    const select = this.#elements.unit;
    const previous = select.value;
    select.replaceChildren();
    const own = this.#org.unitOfRoom(this.#room);
    for (const { unit, depth } of this.#org.ordered) {
      // Indented with ideographic spaces, which <option> keeps.
      const option = element("option", "", `${"\u3000".repeat(depth)}${unit.name}`);
      option.value = unit.id;
      select.append(option);
    }
    // A room assigns downwards, so the first unit below its own is preselected.
    const children = own ? (this.#org.children.get(own.id) ?? []) : [];
    select.value = previous || children[0]?.id || this.#org.ordered[0]?.unit.id || "";
  }

  #setDeadline(hours) {
    const date = new Date(Date.now() + hours * 3_600_000);
    this.#elements.deadline.value = localInputValue(date);
  }

  #renderCamera() {
    const el = this.#elements;
    const camera = this.#camera;
    el.cameraLine.hidden = camera === null;
    if (!camera) {
      delete el.cameraLine.dataset.camera;
      delete el.cameraLine.dataset.snapshot;
      el.snapshotImage.hidden = true;
      return;
    }
    el.cameraLine.dataset.camera = camera.id;
    const snapshot = this.#snapshot;
    let key = "tasks.snapshotTaking";
    if (snapshot?.failed) {
      key = "tasks.snapshotFailed";
    } else if (snapshot) {
      key = "tasks.cameraAttached";
    }
    el.cameraText.textContent = t(key, { name: camera.name, reason: snapshot?.failed ?? "" });
    el.cameraLine.dataset.snapshot = snapshot?.snapshot_path ?? "";
    el.snapshotImage.hidden = !snapshot?.url;
    if (snapshot?.url) {
      el.snapshotImage.src = snapshot.url;
    }
  }

  // A snapshot that fails (camera offline) leaves the task without a
  // picture; the camera id is still attached.
  async #takeSnapshot(camera) {
    let snapshot;
    try {
      snapshot = await taskApi.snapshot(camera.id);
    } catch (err) {
      snapshot = { failed: describeTaskError(err) };
    }
    if (this.#camera?.id === camera.id) {
      this.#snapshot = snapshot;
      this.#renderCamera();
    }
  }

  // ---- actions ----

  async #submit() {
    const el = this.#elements;
    if (this.#busy) {
      return;
    }
    const title = el.title.value.trim();
    const unit = el.unit.value;
    const deadline = new Date(el.deadline.value);
    let problem = null;
    if (!title) {
      problem = t("tasks.error.title");
    } else if (!unit) {
      problem = t("tasks.error.unit");
    } else if (Number.isNaN(deadline.getTime()) || deadline.getTime() <= Date.now()) {
      problem = t("tasks.error.deadline");
    }
    if (problem) {
      el.formError.textContent = problem;
      el.formError.hidden = false;
      return;
    }
    const body = {
      title,
      assigner: this.#person,
      assigner_room: this.#room,
      assignee_unit: unit,
      deadline: localIso(deadline),
      priority: el.form.elements.priority.value || "normal",
    };
    const description = el.description.value.trim();
    if (description) {
      body.description = description;
    }
    if (this.#camera) {
      body.camera_id = this.#camera.id;
      if (this.#snapshot?.snapshot_path) {
        body.snapshot_path = this.#snapshot.snapshot_path;
      }
    }
    if (this.#sessionId !== null) {
      body.session_id = this.#sessionId;
    }
    this.#busy = true;
    el.submit.disabled = true;
    el.formError.hidden = true;
    try {
      const task = await taskApi.create(body, this.#formKey);
      this.#notify(
        t("tasks.created", { title: task.title, unit: this.#org.unitName(task.assignee_unit) }),
        "info",
      );
      this.closeForm();
      this.#selectTab("assigned");
      await this.refresh();
    } catch (err) {
      // The key is kept: submitting again retries the same create.
      const text =
        err.code === "idempotency-conflict"
          ? t("tasks.error.conflict")
          : t("tasks.error.create", { reason: describeTaskError(err) });
      el.formError.textContent = text;
      el.formError.hidden = false;
    } finally {
      this.#busy = false;
      el.submit.disabled = false;
    }
  }

  async #step(task, step, note) {
    try {
      if (step === "remind") {
        await taskApi.remind(task.id, { by: this.#person, note });
      } else {
        const status = step === "return" ? "in_progress" : step;
        const body = { status, by: this.#person, note: note ?? "" };
        if (ASSIGNER_STEPS[task.status]?.includes(step)) {
          body.room = this.#room;
        }
        await taskApi.changeStatus(task.id, body);
      }
    } catch (err) {
      this.#notify(
        t("tasks.error.step", { title: task.title, reason: describeTaskError(err) }),
        "error",
      );
    }
    await this.refresh();
  }

  async #loadHistory(id) {
    try {
      const task = await taskApi.get(id);
      this.#history.set(id, task.events ?? []);
    } catch (err) {
      this.#history.set(id, null);
      this.#notify(t("tasks.error.history", { reason: describeTaskError(err) }), "error");
    }
  }

  async #toggleHistory(id) {
    if (this.#expanded.has(id)) {
      this.#expanded.delete(id);
      this.#history.delete(id);
    } else {
      this.#expanded.add(id);
      await this.#loadHistory(id);
    }
    this.#render();
  }

  #selectTab(tab) {
    this.#tab = tab;
    this.#render();
  }

  // Each open task that became overdue since the last look gets one notice.
  // The tasks already overdue when the panel first loads are counted in the
  // badge without a notice each.
  #warnNewlyOverdue() {
    const now = Date.now();
    for (const task of [...this.#owed, ...this.#assigned]) {
      if (!(task.overdue || isOverdue(task, now)) || this.#warnedOverdue.has(task.id)) {
        continue;
      }
      this.#warnedOverdue.add(task.id);
      if (!this.#firstLoad) {
        this.#notify(t("tasks.overdueNotice", { title: task.title }), "warning");
      }
    }
    this.#firstLoad = false;
  }

  // ---- rendering ----

  #relabel() {
    const el = this.#elements;
    el.heading.textContent = t("tasks.heading");
    el.newButton.textContent = t("tasks.new");
    el.submit.textContent = t("tasks.submit");
    el.cancel.textContent = t("tasks.cancel");
    el.title.placeholder = t("tasks.titlePlaceholder");
    el.description.placeholder = t("tasks.descriptionPlaceholder");
    el.cameraRemove.setAttribute("aria-label", t("tasks.cameraRemove"));
    for (const caption of el.form.querySelectorAll(".task-field-label")) {
      caption.textContent = t(caption.dataset.key);
    }
    for (const preset of el.presets.children) {
      preset.textContent = t("tasks.preset", { hours: preset.dataset.hours });
    }
    for (const text of el.priority.querySelectorAll("[data-priority]")) {
      text.textContent = t(`tasks.priority.${text.dataset.priority}`);
    }
    this.#renderCamera();
    this.#render();
  }

  #render() {
    const el = this.#elements;
    const now = Date.now();
    const overdue = (list) => list.filter((task) => task.overdue || isOverdue(task, now)).length;
    const overdueCount = new Set(
      [...this.#owed, ...this.#assigned]
        .filter((task) => task.overdue || isOverdue(task, now))
        .map((task) => task.id),
    ).size;
    el.overdueBadge.hidden = overdueCount === 0;
    el.overdueBadge.textContent = t("tasks.overdueCount", { count: overdueCount });
    this.#container.dataset.overdue = String(overdueCount);
    this.#onOverdue(overdueCount);

    el.tabOwed.textContent = t("tasks.tab.owed", { count: this.#owed.length });
    el.tabAssigned.textContent = t("tasks.tab.assigned", { count: this.#assigned.length });
    el.tabOwed.dataset.overdue = String(overdue(this.#owed));
    el.tabAssigned.dataset.overdue = String(overdue(this.#assigned));
    for (const tab of [el.tabOwed, el.tabAssigned]) {
      const selected = tab.dataset.tab === this.#tab;
      tab.setAttribute("aria-selected", String(selected));
      tab.classList.toggle("selected", selected);
    }
    el.newButton.disabled = this.#unavailable;

    const tasks = this.#tab === "owed" ? this.#owed : this.#assigned;
    el.list.replaceChildren(...tasks.map((task) => this.#renderTask(task, now)));
    el.empty.hidden = tasks.length > 0 || this.#unavailable;
    if (this.#tab === "owed" && !this.#org.unitOfRoom(this.#room)) {
      el.empty.textContent = t("tasks.noUnit", { room: this.#room });
    } else {
      el.empty.textContent = t(this.#tab === "owed" ? "tasks.noneOwed" : "tasks.noneAssigned");
    }
  }

  #renderTask(task, now) {
    const item = element("li", "task-item");
    item.dataset.task = String(task.id);
    item.dataset.status = task.status;
    item.dataset.priority = task.priority;
    const overdue = task.overdue || isOverdue(task, now);
    item.dataset.overdue = String(overdue);

    const line = element("div", "task-line");
    line.append(
      priorityBadge(task.priority),
      element("strong", "task-title", task.title),
      element("span", `task-status status-${task.status}`, t(`tasks.status.${task.status}`)),
    );

    const meta = element("div", "task-meta");
    const other =
      this.#tab === "owed"
        ? t("tasks.from", {
            room: this.#org.roomName(task.assigner_room) ?? task.assigner_room,
            person: task.assigner,
          })
        : t("tasks.to", { unit: this.#org.unitName(task.assignee_unit) });
    meta.append(
      element("span", "task-party", other),
      element(
        "span",
        "task-deadline-text",
        t("tasks.deadline", { time: formatTime(task.deadline) }),
      ),
    );
    if (overdue) {
      meta.append(
        element(
          "span",
          "task-overdue",
          t("tasks.overdueFor", { time: formatOverdueFor(task.deadline, now) }),
        ),
      );
    }
    if (task.camera_id) {
      // The stored picture when there is one, else the camera's live picture.
      const stored = Boolean(task.snapshot_path);
      const label = t(stored ? "tasks.snapshotLink" : "tasks.cameraLink");
      const camera = element("a", "task-camera-link", label);
      camera.href = stored ? `/${task.snapshot_path}` : cameraSnapshotUrl(task.camera_id);
      camera.target = "_blank";
      camera.rel = "noopener";
      meta.append(camera);
    }

    const actions = element("div", "task-actions");
    const flow = this.#tab === "owed" ? ASSIGNEE_STEPS : ASSIGNER_STEPS;
    const steps = flow[task.status] ?? [];
    for (const step of steps) {
      const action = button(`task-action step-${step}`, t(`tasks.step.${step}`), () =>
        this.#startStep(item, task, step),
      );
      action.dataset.step = step;
      actions.append(action);
    }
    const history = button("task-action task-history-toggle link-button", "", () =>
      this.#toggleHistory(task.id),
    );
    const expanded = this.#expanded.has(task.id);
    history.textContent = t(expanded ? "tasks.hideHistory" : "tasks.showHistory");
    history.setAttribute("aria-expanded", String(expanded));
    actions.append(history);

    item.append(line, meta, actions);
    if (expanded) {
      item.append(this.#renderHistory(this.#history.get(task.id)));
    }
    return item;
  }

  // A step that needs a note (return, remind) or a confirmation (cancel)
  // opens a small form in the task's row. The other steps run at once.
  #startStep(item, task, step) {
    if (!NOTE_REQUIRED.has(step) && step !== "cancelled") {
      this.#step(task, step);
      return;
    }
    item.querySelector(".task-note-form")?.remove();
    const form = element("form", "task-note-form");
    const note = element("input", "task-note");
    note.maxLength = 2000;
    note.placeholder = t(`tasks.notePlaceholder.${step}`);
    note.required = NOTE_REQUIRED.has(step);
    const confirm = element("button", "task-note-confirm danger", t(`tasks.confirm.${step}`));
    confirm.type = "submit";
    const cancel = button("task-note-cancel", t("tasks.cancel"), () => form.remove());
    form.append(note, confirm, cancel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = note.value.trim();
      if (note.required && !text) {
        note.focus();
        return;
      }
      confirm.disabled = true;
      this.#step(task, step, text);
    });
    item.append(form);
    note.focus();
  }

  #renderHistory(events) {
    const list = element("ol", "task-history");
    if (!events) {
      list.append(element("li", "task-history-empty", t("tasks.historyFailed")));
      return list;
    }
    for (const event of events) {
      const entry = element("li", `task-event event-${event.kind}`);
      entry.dataset.kind = event.kind;
      let text = t(`tasks.event.${event.kind}`);
      if (event.kind === "status") {
        text = t("tasks.event.statusChange", {
          from: t(`tasks.status.${event.from}`),
          to: t(`tasks.status.${event.to}`),
        });
      }
      entry.append(
        element("time", "task-event-time", formatTime(event.at)),
        element("span", "task-event-text", text),
        element("span", "task-event-by", event.by ?? ""),
      );
      if (event.note) {
        entry.append(element("span", "task-event-note", event.note));
      }
      list.append(entry);
    }
    return list;
  }
}

/** URL of a camera's live picture. */
export function cameraSnapshotUrl(cameraId) {
  return `/api/cameras/${encodeURIComponent(cameraId)}/snapshot.jpg`;
}

// ---- overdue list (wall screen) ----

/** The hub's open tasks past their deadline, newest first, for the wall. */
export class OverdueList {
  #list;
  #count;
  #status;
  #org;
  #timer = null;
  #tasks = [];
  #error = null;

  /**
   * @param {object} options
   * @param {HTMLElement} options.list  <ul> to fill
   * @param {HTMLElement} options.count  element showing the number
   * @param {HTMLElement} options.status  element for errors and "none"
   * @param {OrgTree} options.org
   */
  constructor({ list, count, status, org }) {
    this.#list = list;
    this.#count = count;
    this.#status = status;
    this.#org = org;
  }

  start() {
    onLanguageChange(() => this.#render());
    this.refresh();
    this.#timer = setInterval(() => this.refresh(), OVERDUE_REFRESH_MS);
  }

  stop() {
    clearInterval(this.#timer);
  }

  async refresh() {
    try {
      const page = await taskApi.list({ overdue: "true", limit: LIST_LIMIT });
      this.#tasks = page.tasks;
      this.#error = null;
    } catch (err) {
      this.#error = err;
    }
    this.#render();
  }

  #render() {
    const now = Date.now();
    this.#count.textContent = String(this.#tasks.length);
    this.#count.hidden = this.#tasks.length === 0;
    this.#list.replaceChildren(
      ...this.#tasks.map((task) => {
        const item = element("li", "overdue-item");
        item.dataset.task = String(task.id);
        item.append(
          priorityBadge(task.priority),
          element("strong", "overdue-title", task.title),
          element("span", "overdue-unit", this.#org.unitName(task.assignee_unit)),
          element(
            "span",
            "overdue-for",
            t("tasks.overdueFor", { time: formatOverdueFor(task.deadline, now) }),
          ),
        );
        return item;
      }),
    );
    if (this.#error) {
      this.#status.textContent = describeTaskError(this.#error);
    } else {
      this.#status.textContent = this.#tasks.length === 0 ? t("tasks.noneOverdue") : "";
    }
    this.#status.hidden = this.#status.textContent === "";
  }
}
