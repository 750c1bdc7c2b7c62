// Dispatcher's wall screen: the units' surveillance cameras as a tree, a grid
// of 1, 4, 9 or 16 tiles, conference participants beside the cameras, the
// overdue tasks and the task panel.
//
// Camera media reaches the page without any protocol of its own. The wall
// opens a HubSession to a private room (wall-<random>, subscribe "none"),
// pushes each camera it shows into that room with POST
// /api/rooms/{room}/cameras, and subscribes to the track id the push returns.
// Tiles use the sub stream; an enlarged tile switches to the main stream and
// drops the sub stream once the main one shows a frame. Participants of a
// running conference come through a second HubSession per room, also with
// subscribe "none".
//
// URL parameters: room (the command room tasks are assigned from), name (the
// dispatcher's name), token (signed token for hubs that require one, sent on
// the sessions and as the bearer token of API requests), lang (zh or en),
// debug=1 (exposes window.__wall).

import { bindLanguageToggle, initLanguage, onLanguageChange, t, translatePage } from "./i18n.js";
import { HubSession } from "./signaling.js";
import { OrgTree, OverdueList, TaskPanel, apiHeaders, loadOrg, setApiToken } from "./tasks.js";

const LAYOUTS = [1, 4, 9, 16];
const DEFAULT_LAYOUT = 4;
const STORAGE_KEY = "hub.wall";
const NAME_STORAGE_KEY = "hub.name";

const CAMERA_REFRESH_MS = 3_000;
const ROOM_REFRESH_MS = 5_000;
const TICK_MS = 1_000;
// A playing tile whose decoded-frame count does not grow for this long shows
// the "picture interrupted" message.
const STALL_MS = 3_000;
// How long a tile waits for the hub's offer to carry a subscribed track.
const TRACK_WAIT_MS = 15_000;
const FIRST_FRAME_POLL_MS = 100;
// How long an enlarged tile waits for the main stream's first frame before it
// shows the main stream anyway.
const SWITCH_WAIT_MS = 20_000;
// Delays between attempts to open a camera that is offline; the last repeats.
const RETRY_DELAYS_MS = [2_000, 4_000, 8_000, 15_000];
const NOTICE_LIFETIME_MS = 8_000;
const MAX_NOTICES = 4;
// Rooms whose id starts with this are other walls' private rooms.
const WALL_ROOM_PREFIX = "wall-";

function byId(id) {
  const node = document.getElementById(id);
  if (!node) {
    throw new Error(`page element #${id} is missing from wall.html`);
  }
  return node;
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

function button(className, text, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  node.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick(event);
  });
  return node;
}

function hubSocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function readStorage(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function writeStorage(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage blocked: the wall starts empty next time.
  }
}

class Notices {
  #container;

  constructor(container) {
    this.#container = container;
  }

  show(text, level = "info") {
    const notice = element("div", `notice notice-${level}`);
    notice.setAttribute("role", level === "error" ? "alert" : "status");
    const body = element("span", "", text);
    const close = button("notice-close", "×", () => notice.remove());
    close.setAttribute("aria-label", t("notice.dismiss"));
    notice.append(body, close);
    this.#container.append(notice);
    while (this.#container.children.length > MAX_NOTICES) {
      this.#container.firstElementChild.remove();
    }
    if (level !== "error") {
      setTimeout(() => notice.remove(), NOTICE_LIFETIME_MS);
    }
  }
}

// ---- hub HTTP calls ----

/** A failed call to the camera push API, with the hub's error code. */
class PushError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "PushError";
    this.status = status;
    this.code = code;
  }

  /** True when trying again later may succeed (camera offline, hub away). */
  get retryable() {
    return this.status === 0 || this.status >= 500 || this.code === "room-not-ready";
  }
}

async function callHub(method, path, body = undefined) {
  const init = { method, headers: apiHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new PushError(0, "network", t("wall.error.network", { reason: err.message }));
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON: only the status is known.
  }
  if (!response.ok) {
    const error = data?.error;
    const code = typeof error === "string" ? error : (error?.code ?? `http-${response.status}`);
    const message =
      data?.message ?? error?.message ?? `${method} ${path} failed with HTTP ${response.status}`;
    throw new PushError(response.status, code, message);
  }
  return data;
}

/** Shows camera `camera`'s `stream` in `room`; returns {track, label}. */
function pushCamera(room, camera, stream) {
  return callHub("POST", `/api/rooms/${encodeURIComponent(room)}/cameras`, { camera, stream });
}

async function removeCamera(room, camera, stream) {
  const path =
    `/api/rooms/${encodeURIComponent(room)}/cameras/${encodeURIComponent(camera)}` +
    `?stream=${encodeURIComponent(stream)}`;
  try {
    await callHub("DELETE", path);
  } catch (err) {
    // 404: the room or the push is already gone, which is the goal.
    if (err.status !== 404) {
      throw err;
    }
  }
}

// ---- down tracks by hub track id ----

/**
 * Returns the mid of the media section of `sdp` that carries hub track
 * `trackId`, or null. The hub writes the publisher's id and the track id in
 * each section's a=msid line (media/peer.py sets the sender's stream and
 * track id), so the line names the track even when its publisher is no
 * participant, as with camera feeds.
 */
export function midOfTrack(sdp, trackId) {
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (lines.includes("a=inactive")) {
      continue;
    }
    const mid = lines.find((line) => line.startsWith("a=mid:"))?.slice(6);
    const carries = lines.some(
      (line) => line.startsWith("a=msid:") && line.slice(7).split(" ")[1] === trackId,
    );
    if (mid !== undefined && carries) {
      return mid;
    }
  }
  return null;
}

/**
 * Finds the MediaStreamTrack that carries a hub track on a session's down
 * connection, from the hub's SDP.
 */
// NOTE: HubSession now emits track-added for camera feeds too (publisher
// "camera:<id>"); this index, which reads the down connection's SDP, predates
// that and could be replaced by those events.
class DownTracks {
  #session;
  #waiters = new Set(); // {trackId, resolve, reject, timer}

  constructor(session) {
    this.#session = session;
    session.addEventListener("joined", () => this.#watch());
  }

  find(trackId) {
    const pc = this.#session.connections.down;
    if (!pc || !pc.remoteDescription || pc.signalingState !== "stable") {
      return null;
    }
    const mid = midOfTrack(pc.remoteDescription.sdp, trackId);
    if (mid === null) {
      return null;
    }
    const transceiver = pc.getTransceivers().find((candidate) => candidate.mid === mid);
    if (!transceiver || !["recvonly", "sendrecv"].includes(transceiver.currentDirection)) {
      return null;
    }
    return transceiver.receiver.track;
  }

  /** Resolves with the track once the hub's offer carries it. */
  wait(trackId, timeoutMs) {
    const found = this.find(trackId);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const waiter = { trackId, resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(t("wall.error.noTrack", { track: trackId, seconds: timeoutMs / 1000 })));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  #watch() {
    const pc = this.#session.connections.down;
    if (!pc) {
      return;
    }
    pc.addEventListener("signalingstatechange", () => {
      if (pc.signalingState === "stable") {
        this.#settle();
      }
    });
  }

  #settle() {
    for (const waiter of [...this.#waiters]) {
      const track = this.find(waiter.trackId);
      if (track) {
        clearTimeout(waiter.timer);
        this.#waiters.delete(waiter);
        waiter.resolve(track);
      }
    }
  }
}

/** A HubSession that receives only what it subscribes to, with its tracks. */
class Link {
  constructor({ room, name, token }) {
    this.room = room;
    this.session = new HubSession({ url: hubSocketUrl(), room, name, token, subscribe: "none" });
    this.tracks = new DownTracks(this.session);
    this.joined = false;
  }

  async join() {
    await this.session.join();
    this.joined = true;
  }

  leave() {
    this.joined = false;
    this.session.leave();
  }

  /** Video tracks of the room other than this link's own. */
  videoSources() {
    const names = new Map(this.session.peers.map((peer) => [peer.id, peer.name]));
    return this.session.roomTracks
      .filter((track) => track.kind === "video" && track.peer !== this.session.peerId)
      .map((track) => ({
        id: track.id,
        source: track.source,
        name:
          track.source === "camera-feed"
            ? (track.label ?? track.id)
            : (names.get(track.peer) ?? track.label ?? track.peer),
      }));
  }
}

// ---- cameras ----

/** Returns "online", "offline", "starting" or "idle" for the camera's streams. */
function cameraState(camera) {
  const states = Object.values(camera.status ?? {}).map((status) => status.state);
  for (const state of ["online", "offline", "starting"]) {
    if (states.includes(state)) {
      return state;
    }
  }
  return "idle";
}

function cameraError(camera, stream) {
  const status = camera.status?.[stream] ?? {};
  return status.last_error || "";
}

function hasSubStream(camera) {
  return Boolean(camera.status?.sub) || Boolean(camera.sub_url);
}

/** The camera list of /api/cameras, polled, with change listeners. */
class CameraDirectory extends EventTarget {
  cameras = new Map();
  error = null;

  async refresh() {
    try {
      const data = await callHub("GET", "/api/cameras");
      this.cameras = new Map(data.cameras.map((camera) => [camera.id, camera]));
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.dispatchEvent(new Event("change"));
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), CAMERA_REFRESH_MS);
  }
}

/** The org tree's units with their cameras, as nested <details>. */
class CameraTree {
  #root;
  #status;
  #filter;
  #org;
  #directory;
  #onPick;
  #closed = new Set(); // ids of the units the user collapsed
  #signature = "";

  constructor({ root, status, filter, org, directory, onPick }) {
    this.#root = root;
    this.#status = status;
    this.#filter = filter;
    this.#org = org;
    this.#directory = directory;
    this.#onPick = onPick;
    directory.addEventListener("change", () => this.render());
    filter.addEventListener("input", () => this.render());
  }

  /** Redraws the tree when the cameras, their states or the filter changed. */
  render(force = false) {
    const query = this.#filter.value.trim().toLowerCase();
    const signature = JSON.stringify([
      query,
      this.#directory.error?.message ?? "",
      [...this.#directory.cameras.values()].map((camera) => [
        camera.id,
        camera.name,
        camera.unit,
        camera.enabled,
        cameraState(camera),
        cameraError(camera, "sub") || cameraError(camera, "main"),
      ]),
    ]);
    if (!force && signature === this.#signature) {
      return;
    }
    this.#signature = signature;
    const cameras = [...this.#directory.cameras.values()].filter(
      (camera) =>
        camera.enabled !== false &&
        (!query ||
          `${camera.name} ${camera.location ?? ""} ${camera.id}`.toLowerCase().includes(query)),
    );
    const byUnit = new Map();
    for (const camera of cameras) {
      // A camera of a unit outside the tree goes under "other units".
      const unit = this.#org.byId.has(camera.unit) ? camera.unit : "";
      if (!byUnit.has(unit)) {
        byUnit.set(unit, []);
      }
      byUnit.get(unit).push(camera);
    }

    const nodes = this.#units(null, byUnit, query !== "");
    if (byUnit.has("")) {
      nodes.push(this.#unitNode({ id: "", name: t("wall.otherUnits") }, [], byUnit.get(""), true));
    }
    this.#root.replaceChildren(...nodes);

    const error = this.#directory.error;
    if (error) {
      this.#status.textContent = t("wall.camerasFailed", { reason: error.message });
    } else {
      this.#status.textContent = cameras.length === 0 ? t("wall.noCameras") : "";
    }
    this.#status.hidden = this.#status.textContent === "";
  }

  #units(parent, byUnit, expandAll) {
    const nodes = [];
    for (const unit of this.#org.children.get(parent) ?? []) {
      const children = this.#units(unit.id, byUnit, expandAll);
      const own = byUnit.get(unit.id) ?? [];
      if (children.length === 0 && own.length === 0) {
        continue;
      }
      nodes.push(this.#unitNode(unit, children, own, expandAll));
    }
    return nodes;
  }

  #unitNode(unit, children, cameras, expandAll) {
    const details = element("details", "tree-unit");
    details.dataset.unit = unit.id;
    details.setAttribute("role", "treeitem");
    // Expanded unless the user collapsed it, so the wall opens showing all.
    details.open = expandAll || !this.#closed.has(unit.id);
    details.addEventListener("toggle", () => {
      if (details.open) {
        this.#closed.delete(unit.id);
      } else {
        this.#closed.add(unit.id);
      }
    });
    const summary = element("summary", "tree-unit-name", unit.name);
    const group = element("div", "tree-children");
    group.setAttribute("role", "group");
    group.append(...children, ...cameras.map((camera) => this.#cameraNode(camera)));
    details.append(summary, group);
    return details;
  }

  #cameraNode(camera) {
    const item = element("button", "tree-camera");
    item.type = "button";
    item.draggable = true;
    item.dataset.camera = camera.id;
    const state = cameraState(camera);
    item.dataset.state = state;
    item.setAttribute("role", "treeitem");
    const network = element("span", `network-badge network-${camera.network}`);
    network.textContent = t(`wall.network.${camera.network}`);
    const name = element("span", "tree-camera-name", camera.name);
    const status = element("span", `camera-state state-${state}`, t(`wall.state.${state}`));
    item.append(network, name, status);
    const error = cameraError(camera, "sub") || cameraError(camera, "main");
    item.title = [camera.location, state === "offline" ? error : ""].filter(Boolean).join("\n");
    item.addEventListener("click", () => this.#onPick({ kind: "camera", camera: camera.id }));
    item.addEventListener("dragstart", (event) => {
      const source = { kind: "camera", camera: camera.id };
      event.dataTransfer.setData("application/x-wall-source", JSON.stringify(source));
      event.dataTransfer.effectAllowed = "copy";
    });
    return item;
  }
}

// ---- running rooms ----

/** Running conference rooms from /api/stats, with the links the wall opened. */
class RoomList {
  #root;
  #status;
  #org;
  #wall;
  #error = null;
  #signature = "";
  rooms = []; // [{id, peers, tracks}] of /api/stats without wall rooms

  constructor({ root, status, org, wall }) {
    this.#root = root;
    this.#status = status;
    this.#org = org;
    this.#wall = wall;
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), ROOM_REFRESH_MS);
  }

  async refresh() {
    try {
      const stats = await callHub("GET", "/api/stats");
      this.rooms = stats.rooms.filter((room) => !room.id.startsWith(WALL_ROOM_PREFIX));
      this.#error = null;
    } catch (err) {
      this.#error = err;
    }
    this.render();
  }

  /** Redraws the list when the rooms, their sources or the links changed. */
  render(force = false) {
    const links = this.#wall.links;
    const signature = JSON.stringify([
      this.#error?.message ?? "",
      this.rooms.map((room) => [room.id, room.peers.length]),
      [...links.values()].map((link) => [link.room, link.joined, link.videoSources()]),
    ]);
    if (!force && signature === this.#signature) {
      return;
    }
    this.#signature = signature;
    const ids = new Set(this.rooms.map((room) => room.id));
    for (const room of links.keys()) {
      ids.add(room);
    }
    const items = [...ids].sort().map((id) => {
      const room = this.rooms.find((candidate) => candidate.id === id);
      const link = links.get(id);
      // A joined link's peer list is live and leaves out the link itself,
      // which /api/stats counts as a participant.
      const count = link?.joined ? link.session.peers.length : (room?.peers.length ?? 0);
      const item = element("li", "room-item");
      item.dataset.room = id;
      const line = element("div", "room-line");
      const name = this.#org.roomName(id);
      line.append(
        element("span", "room-title", name ?? id),
        element("code", "room-id", name ? id : ""),
        element("span", "room-count", t("wall.roomPeers", { count })),
      );
      const action = link
        ? button("room-leave", t("wall.roomLeave"), () => this.#wall.leaveRoom(id))
        : button("room-join", t("wall.roomJoin"), () => this.#wall.joinRoom(id));
      line.append(action);
      item.append(line);
      if (link) {
        item.append(this.#sources(link));
      }
      return item;
    });
    this.#root.replaceChildren(...items);
    if (this.#error) {
      this.#status.textContent = t("wall.roomsFailed", { reason: this.#error.message });
    } else {
      this.#status.textContent = items.length === 0 ? t("wall.noRooms") : "";
    }
    this.#status.hidden = this.#status.textContent === "";
  }

  #sources(link) {
    const list = element("ul", "room-sources");
    const sources = link.videoSources();
    if (!link.joined) {
      list.append(element("li", "room-source-note", t("wall.roomJoining")));
    } else if (sources.length === 0) {
      list.append(element("li", "room-source-note", t("wall.roomNoVideo")));
    }
    for (const source of sources) {
      const item = element("li");
      const pick = {
        kind: "peer",
        room: link.room,
        track: source.id,
        name: source.name,
        source: source.source,
      };
      const entry = button("room-source", "", () => this.#wall.place(pick));
      entry.draggable = true;
      entry.dataset.track = source.id;
      entry.append(
        element("span", `source-kind source-${source.source}`, t(`wall.source.${source.source}`)),
        element("span", "room-source-name", source.name),
      );
      entry.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData("application/x-wall-source", JSON.stringify(pick));
        event.dataTransfer.effectAllowed = "copy";
      });
      item.append(entry);
      list.append(item);
    }
    return list;
  }
}

// ---- tiles ----

/**
 * One tile of the grid. The wall sets what the tile should show: a camera, or
 * a participant's track. sync() then changes what it shows one step at a
 * time, so fast clicks do not race each other.
 */
class WallTile {
  #wall;
  #requested = null; // {kind: "camera", camera} or {kind: "peer", room, track, name, source}
  #current = null; // {key, track id, stream, camera, video, room}
  #syncing = false;
  #dirty = false;
  #retryTimer = null;
  #retryAttempt = 0;
  #openedAt = 0;
  #lastFrames = 0;
  #lastProgress = 0;
  #state = "empty";
  #reason = "";
  #enlarged = false;

  constructor(index, wall) {
    this.index = index;
    this.#wall = wall;
    this.root = element("figure", "wall-tile");
    this.root.dataset.index = String(index);
    this.root.tabIndex = 0;
    this.stage = element("div", "wall-tile-stage");
    this.message = element("div", "wall-tile-message");
    this.messageText = element("span", "wall-tile-message-text");
    this.messageDetail = element("span", "wall-tile-message-detail");
    this.message.append(this.messageText, this.messageDetail);

    this.caption = element("figcaption", "wall-tile-caption");
    this.nameLabel = element("span", "wall-tile-name");
    this.streamLabel = element("span", "wall-tile-stream");
    this.stateLabel = element("span", "wall-tile-state");
    this.caption.append(this.nameLabel, this.streamLabel, this.stateLabel);

    this.tools = element("div", "wall-tile-tools");
    this.enlargeButton = button("wall-tool tool-enlarge", "", () => this.#wall.toggleEnlarge(this));
    this.pushButton = button("wall-tool tool-push", "", () => this.#wall.openPushDialog(this));
    this.taskButton = button("wall-tool tool-task", "", () => this.#wall.assignFromTile(this));
    this.closeButton = button("wall-tool tool-close", "×", () => this.clear());
    this.tools.append(this.enlargeButton, this.pushButton, this.taskButton, this.closeButton);

    this.root.append(this.stage, this.message, this.caption, this.tools);
    this.root.addEventListener("click", () => this.#wall.select(this));
    this.root.addEventListener("dblclick", () => this.#wall.toggleEnlarge(this));
    this.root.addEventListener("dragover", (event) => {
      if (event.dataTransfer.types.includes("application/x-wall-source")) {
        event.preventDefault();
        this.root.classList.add("drop-target");
      }
    });
    this.root.addEventListener("dragleave", () => this.root.classList.remove("drop-target"));
    this.root.addEventListener("drop", (event) => {
      event.preventDefault();
      this.root.classList.remove("drop-target");
      const raw = event.dataTransfer.getData("application/x-wall-source");
      if (raw) {
        this.#wall.place(JSON.parse(raw), this);
      }
    });
    this.render();
  }

  get requested() {
    return this.#requested;
  }

  get cameraId() {
    return this.#requested?.kind === "camera" ? this.#requested.camera : null;
  }

  get enlarged() {
    return this.#enlarged;
  }

  /** Shows `source` in this tile, replacing what it showed. */
  assign(source) {
    this.#requested = source;
    this.#openedAt = performance.now();
    delete this.root.dataset.firstFrameMs;
    this.#retryAttempt = 0;
    this.#setState("connecting");
    this.sync();
  }

  clear() {
    // Emptied first, so leaving the enlarged view opens no sub stream.
    this.#requested = null;
    this.#setState("empty");
    if (this.#enlarged) {
      this.#wall.toggleEnlarge(this);
    }
    this.sync();
    this.#wall.saveLayout();
  }

  setEnlarged(enlarged) {
    this.#enlarged = enlarged;
    this.root.classList.toggle("enlarged", enlarged);
    this.sync();
  }

  /** Called when a session rejoined: the hub forgot its pushes and subscriptions. */
  forget(room) {
    if (this.#current && this.#current.room === room) {
      this.#detachVideo(this.#current.video);
      this.#current = null;
      if (this.#requested) {
        this.#setState("connecting");
      }
      this.sync();
    }
  }

  /** Called when the room's track list changed. */
  tracksChanged(room, tracks) {
    const requested = this.#requested;
    if (requested?.kind === "peer" && requested.room === room && this.#state === "ended") {
      this.#resumePeer(room);
      return;
    }
    const current = this.#current;
    if (!current || current.room !== room || tracks.some((track) => track.id === current.track)) {
      return;
    }
    // The track ended. A camera is pushed again, and a participant's tile
    // shows that the video ended until a track of the same name and source
    // appears (the participant rejoined).
    this.#detachVideo(current.video);
    this.#current = null;
    if (requested?.kind === "peer") {
      this.#setState("ended");
      this.#resumePeer(room);
      return;
    }
    this.sync();
  }

  #resumePeer(room) {
    const { name, source } = this.#requested;
    const again = this.#wall.links
      .get(room)
      ?.videoSources()
      .find((candidate) => candidate.name === name && candidate.source === source);
    if (again) {
      this.#requested = { ...this.#requested, track: again.id };
      this.#setState("connecting");
      this.sync();
    }
  }

  /** Brings what the tile shows in line with what it should show. */
  async sync() {
    this.#dirty = true;
    if (this.#syncing) {
      return;
    }
    this.#syncing = true;
    try {
      while (this.#dirty) {
        this.#dirty = false;
        await this.#syncOnce();
      }
    } finally {
      this.#syncing = false;
    }
  }

  async #syncOnce() {
    clearTimeout(this.#retryTimer);
    const requested = this.#requested;
    const key = this.#keyOf(requested);
    if (this.#current && this.#current.key === key) {
      this.render();
      return;
    }
    if (requested === null) {
      await this.#release(this.#current);
      this.#current = null;
      this.render();
      return;
    }
    if (this.#state === "ended") {
      return;
    }
    let next;
    try {
      next =
        requested.kind === "camera"
          ? await this.#openCamera(requested, key)
          : await this.#openPeer(requested, key);
    } catch (err) {
      if (this.#keyOf(this.#requested) !== key) {
        return;
      }
      const retry = !(err instanceof PushError) || err.retryable;
      this.#setState(retry && err.code === "camera-offline" ? "offline" : "error", err.message);
      if (retry) {
        const delay = RETRY_DELAYS_MS[Math.min(this.#retryAttempt, RETRY_DELAYS_MS.length - 1)];
        this.#retryAttempt += 1;
        this.#retryTimer = setTimeout(() => this.sync(), delay);
      }
      return;
    }
    if (this.#keyOf(this.#requested) !== key) {
      // The tile was asked for something else meanwhile; the loop goes on.
      await this.#release(next);
      return;
    }
    // Make before break: an enlarged camera tile keeps its sub stream on
    // screen until the main stream shows its first frame. The new video waits
    // behind the old one, because a video outside the page is not rendered.
    const previous = this.#current;
    if (previous && previous.camera && previous.camera === next.camera) {
      next.video.classList.add("pending");
      this.stage.prepend(next.video);
      const shows = await this.#firstFrame(next.video, SWITCH_WAIT_MS);
      next.video.classList.remove("pending");
      if (this.#keyOf(this.#requested) !== key) {
        await this.#release(next);
        return;
      }
      if (shows) {
        // Measured from the switch request to the new stream's first frame.
        this.root.dataset.switchMs = String(Math.round(performance.now() - next.requestedAt));
      }
    }
    this.#current = next;
    this.#retryAttempt = 0;
    this.stage.replaceChildren(next.video);
    await this.#release(previous);
    this.#lastFrames = 0;
    this.#lastProgress = performance.now();
    this.#waitForFirstFrame(next);
    this.render();
  }

  #keyOf(requested) {
    if (!requested) {
      return null;
    }
    if (requested.kind === "camera") {
      return `camera|${requested.camera}|${this.#streamFor(requested.camera)}`;
    }
    return `peer|${requested.room}|${requested.track}`;
  }

  #streamFor(cameraId) {
    const camera = this.#wall.directory.cameras.get(cameraId);
    if (!camera || !hasSubStream(camera)) {
      return "main";
    }
    return this.#enlarged ? "main" : "sub";
  }

  async #openCamera(requested, key) {
    const own = this.#wall.own;
    if (!own.joined) {
      throw new PushError(0, "room-not-ready", t("wall.error.notJoined"));
    }
    const stream = key.split("|")[2];
    const requestedAt = performance.now();
    const pushed = await pushCamera(own.room, requested.camera, stream);
    try {
      await own.session.subscribeTracks([pushed.track]);
      const track = await own.tracks.wait(pushed.track, TRACK_WAIT_MS);
      return {
        key,
        room: own.room,
        camera: requested.camera,
        stream,
        track: pushed.track,
        label: pushed.label,
        video: this.#attachVideo(track),
        requestedAt,
      };
    } catch (err) {
      const stillCurrent = this.#current?.track === pushed.track;
      if (!stillCurrent) {
        await removeCamera(own.room, requested.camera, stream).catch(() => {});
      }
      throw err;
    }
  }

  async #openPeer(requested, key) {
    const link = this.#wall.links.get(requested.room);
    if (!link || !link.joined) {
      const message = t("wall.error.roomNotJoined", { room: requested.room });
      throw new PushError(0, "room-not-ready", message);
    }
    await link.session.subscribeTracks([requested.track]);
    const track = await link.tracks.wait(requested.track, TRACK_WAIT_MS);
    return {
      key,
      room: requested.room,
      camera: null,
      track: requested.track,
      label: requested.name,
      video: this.#attachVideo(track),
      requestedAt: performance.now(),
    };
  }

  async #release(current) {
    if (!current) {
      return;
    }
    this.#detachVideo(current.video);
    try {
      if (current.camera) {
        const own = this.#wall.own;
        if (own.joined && own.room === current.room) {
          await own.session.unsubscribeTracks([current.track]).catch(() => {});
          await removeCamera(current.room, current.camera, current.stream);
        }
      } else {
        const link = this.#wall.links.get(current.room);
        if (link?.joined) {
          await link.session.unsubscribeTracks([current.track]);
        }
      }
    } catch (err) {
      // The hub drops the push when the wall leaves; nothing to retry here.
      console.warn(
        `wall tile ${this.index}: releasing track ${current.track} failed: ${err.message}`,
      );
    }
  }

  #attachVideo(track) {
    const video = element("video", "wall-video");
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.srcObject = new MediaStream([track]);
    video.play().catch(() => {
      // Muted video may autoplay; a refusal only delays the picture.
    });
    return video;
  }

  #detachVideo(video) {
    if (video) {
      video.srcObject = null;
      video.remove();
    }
  }

  /** Resolves true at the video's first decoded frame, false after `timeoutMs`. */
  #firstFrame(video, timeoutMs) {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (shows) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          clearInterval(poll);
          resolve(shows);
        }
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      // The frame callback gives the exact time; the decoded-frame counter
      // covers a video the compositor does not draw.
      const poll = setInterval(() => {
        if (video.getVideoPlaybackQuality().totalVideoFrames > 0) {
          finish(true);
        }
      }, FIRST_FRAME_POLL_MS);
      if (typeof video.requestVideoFrameCallback === "function") {
        video.requestVideoFrameCallback(() => finish(true));
      }
    });
  }

  async #waitForFirstFrame(current) {
    const video = current.video;
    if (this.root.dataset.firstFrameMs === undefined) {
      // Measured from the user's click to the first decoded frame.
      const shows = await this.#firstFrame(video, TRACK_WAIT_MS * 4);
      if (shows && this.#current === current && this.root.dataset.firstFrameMs === undefined) {
        this.root.dataset.firstFrameMs = String(Math.round(performance.now() - this.#openedAt));
      }
    }
    if (this.#current === current) {
      this.tick(performance.now());
    }
  }

  /** Checks that frames still arrive; called every TICK_MS by the wall. */
  tick(now) {
    const current = this.#current;
    if (!current || this.#state === "ended") {
      return;
    }
    if (this.root.offsetParent === null) {
      // Hidden behind an enlarged tile, the video may not be drawn, so a
      // still frame count means nothing.
      this.#lastProgress = now;
      return;
    }
    const frames = current.video.getVideoPlaybackQuality().totalVideoFrames;
    if (frames > this.#lastFrames) {
      this.#lastFrames = frames;
      this.#lastProgress = now;
      this.#setState("playing");
      return;
    }
    if (this.#state === "playing" && now - this.#lastProgress > STALL_MS) {
      this.#setState("stalled");
    }
    if (this.#state === "stalled" || this.#state === "connecting") {
      this.#checkCameraStatus();
    }
  }

  // While no frames arrive, the hub's camera status shows whether the camera
  // itself is down and why. The hub's reader retries by itself.
  #checkCameraStatus() {
    const current = this.#current;
    const camera = current?.camera ? this.#wall.directory.cameras.get(current.camera) : null;
    if (!camera) {
      return;
    }
    const status = camera.status?.[current.stream];
    if (status?.state === "offline") {
      this.#setState("offline", status.last_error || t("wall.error.unknown"));
    }
  }

  /** Re-reads the camera status when the directory refreshes. */
  cameraStatusChanged() {
    if (this.#state === "offline" && this.#current) {
      const { camera, stream } = this.#current;
      const status = this.#wall.directory.cameras.get(camera)?.status?.[stream];
      if (status && status.state !== "offline") {
        // Back online: wait for frames, reported by tick().
        this.#setState("connecting");
      }
    }
    this.render();
  }

  #setState(state, reason = "") {
    this.#state = state;
    this.#reason = reason;
    this.render();
  }

  render() {
    const requested = this.#requested;
    const root = this.root;
    root.dataset.state = requested ? this.#state : "empty";
    root.dataset.kind = requested?.kind ?? "";
    root.classList.toggle("has-video", requested !== null && this.#state === "playing");
    if (requested?.kind === "camera") {
      root.dataset.camera = requested.camera;
    } else {
      delete root.dataset.camera;
    }
    const current = this.#current;
    if (current) {
      root.dataset.track = current.track;
      root.dataset.stream = current.stream ?? "";
    } else {
      delete root.dataset.track;
      delete root.dataset.stream;
    }

    let name = "";
    if (requested?.kind === "camera") {
      const camera = this.#wall.directory.cameras.get(requested.camera);
      name = camera?.name ?? current?.label ?? requested.camera;
    } else if (requested) {
      name = requested.name;
    }
    this.nameLabel.textContent = name;
    root.title = name;
    this.streamLabel.hidden = !current?.stream;
    this.streamLabel.textContent = current?.stream ? t(`wall.stream.${current.stream}`) : "";
    this.stateLabel.textContent = requested ? t(`wall.tileState.${this.#state}`) : "";
    this.stateLabel.dataset.state = this.#state;
    this.caption.hidden = !requested;

    // A headline in large type, and the hub's reason below it.
    const messages = {
      empty: () => [t("wall.tile.empty"), ""],
      connecting: () => [t("wall.tile.connecting"), ""],
      stalled: () => [t("wall.tile.stalled"), ""],
      offline: () => [t("wall.tile.offline"), this.#reason || t("wall.error.unknown")],
      error: () => [t("wall.tile.error"), this.#reason],
      ended: () => [t("wall.tile.ended", { name }), ""],
    };
    const state = requested ? this.#state : "empty";
    const [headline, detail] = messages[state]?.() ?? ["", ""];
    this.message.hidden = state === "playing";
    this.messageText.textContent = headline;
    this.messageDetail.textContent = detail;
    this.messageDetail.hidden = detail === "";
    const levels = { offline: "danger", error: "danger", stalled: "warning" };
    this.message.dataset.level = levels[state] ?? "";

    this.tools.hidden = !requested;
    this.enlargeButton.textContent = t(this.#enlarged ? "wall.tool.shrink" : "wall.tool.enlarge");
    this.pushButton.textContent = t("wall.tool.push");
    this.taskButton.textContent = t("wall.tool.task");
    this.closeButton.setAttribute("aria-label", t("wall.tool.close"));
    this.closeButton.title = t("wall.tool.close");
    this.pushButton.hidden = requested?.kind !== "camera";
    this.taskButton.hidden = requested?.kind !== "camera";
  }
}

// ---- the wall ----

class WallApp {
  directory = new CameraDirectory();
  links = new Map(); // room id -> Link of a joined conference room
  own = null; // Link of the private room
  #org = new OrgTree();
  #tiles = [];
  #layout = DEFAULT_LAYOUT;
  #selected = 0;
  #enlarged = null;
  #notices;
  #person;
  #commandRoom;
  #tree;
  #rooms;
  #tasks = null;
  #overdue = null;
  #pushTile = null;
  #token = "";

  constructor() {
    this.#notices = new Notices(byId("notices"));
    const params = new URLSearchParams(location.search);
    const person = params.get("name") ?? readStorage(NAME_STORAGE_KEY) ?? "";
    this.#person = person.trim() || t("wall.defaultPerson");
    this.#commandRoom = params.get("room") ?? "";
    this.#token = params.get("token") ?? "";
    setApiToken(this.#token);
    if (params.get("debug") === "1") {
      Object.defineProperty(window, "__wall", {
        value: Object.freeze({
          room: () => this.own?.room ?? null,
          state: () => this.own?.session.state,
        }),
      });
    }
  }

  async start() {
    try {
      this.#org = await loadOrg();
    } catch (err) {
      this.#notices.show(t("wall.orgFailed", { reason: err.message }), "warning");
    }
    if (!this.#commandRoom) {
      const root = this.#org.byId.get(this.#org.root);
      this.#commandRoom = root?.rooms?.[0]?.id ?? "command";
    }
    byId("command-room").textContent = this.#org.roomName(this.#commandRoom) ?? this.#commandRoom;

    const saved = this.#readLayout();
    this.#buildGrid();
    this.setLayout(LAYOUTS.includes(saved.layout) ? saved.layout : DEFAULT_LAYOUT);
    for (const buttonNode of byId("layout-buttons").querySelectorAll("button[data-layout]")) {
      buttonNode.addEventListener("click", () => this.setLayout(Number(buttonNode.dataset.layout)));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.#enlarged) {
        this.toggleEnlarge(this.#enlarged);
      }
    });

    this.#tree = new CameraTree({
      root: byId("camera-tree"),
      status: byId("camera-status"),
      filter: byId("camera-filter"),
      org: this.#org,
      directory: this.directory,
      onPick: (source) => this.place(source),
    });
    this.directory.addEventListener("change", () => {
      for (const tile of this.#tiles) {
        tile.cameraStatusChanged();
      }
    });
    this.#rooms = new RoomList({
      root: byId("room-list"),
      status: byId("room-status"),
      org: this.#org,
      wall: this,
    });

    this.#overdue = new OverdueList({
      list: byId("overdue-list"),
      count: byId("overdue-count"),
      status: byId("overdue-status"),
      org: this.#org,
    });
    this.#overdue.start();
    this.#tasks = new TaskPanel({
      container: byId("task-panel"),
      room: this.#commandRoom,
      person: this.#person,
      org: this.#org,
      notify: (text, level) => this.#notices.show(text, level),
    });
    this.#tasks.start();

    onLanguageChange(() => this.#relabel());
    byId("push-dialog").addEventListener("close", () => {
      this.#pushTile = null;
    });
    setInterval(() => {
      const now = performance.now();
      for (const tile of this.#tiles) {
        tile.tick(now);
      }
    }, TICK_MS);

    await this.directory.refresh();
    this.directory.start();
    this.#rooms.start();
    await this.#joinOwnRoom();
    for (const [index, camera] of saved.cameras.entries()) {
      if (camera && index < this.#layout && this.directory.cameras.has(camera)) {
        this.#tiles[index].assign({ kind: "camera", camera });
      }
    }
  }

  // ---- sessions ----

  async #joinOwnRoom() {
    const link = new Link({
      room: `${WALL_ROOM_PREFIX}${randomId()}`,
      name: t("wall.peerName", { person: this.#person }).slice(0, 64),
      token: this.#token,
    });
    this.own = link;
    this.#listenForTasks(link);
    const state = byId("connection-state");
    const renderState = (value) => {
      state.dataset.state = value;
      state.textContent = t(`state.${value}`);
    };
    renderState("connecting");
    link.session.addEventListener("connection-state", ({ detail }) => renderState(detail.state));
    let joinedBefore = false;
    link.session.addEventListener("joined", () => {
      link.joined = true;
      if (joinedBefore) {
        // A new socket is a new participant: the hub forgot the pushes.
        for (const tile of this.#tiles) {
          tile.forget(link.room);
        }
      }
      joinedBefore = true;
    });
    link.session.addEventListener("tracks", ({ detail }) => {
      for (const tile of this.#tiles) {
        tile.tracksChanged(link.room, detail.tracks);
      }
    });
    link.session.addEventListener("closed", () => {
      link.joined = false;
    });
    link.session.addEventListener("error", ({ detail }) => {
      console.warn(`wall room ${link.room}: ${detail.code}: ${detail.message}`);
    });
    window.addEventListener("pagehide", () => link.leave());
    try {
      await link.join();
    } catch (err) {
      renderState("failed");
      this.#notices.show(t("wall.joinFailed", { reason: err.message }), "error");
    }
  }

  // The hub sends "task-event" to the assigner's room and to the assignee
  // unit's rooms, so the wall receives the events of the sessions it joined.
  // The task panel and the overdue list poll for the other tasks.
  #listenForTasks(link) {
    this.#tasks.attachSession(link.session);
    link.session.onMessage((message) => {
      if (message.type === "task-event") {
        this.#overdue.refresh();
      }
    });
  }

  async joinRoom(room) {
    if (this.links.has(room)) {
      return;
    }
    const link = new Link({
      room,
      name: t("wall.peerName", { person: this.#person }).slice(0, 64),
      token: this.#token,
    });
    this.links.set(room, link);
    this.#listenForTasks(link);
    let joinedBefore = false;
    link.session.addEventListener("joined", () => {
      link.joined = true;
      if (joinedBefore) {
        for (const tile of this.#tiles) {
          tile.forget(room);
        }
      }
      joinedBefore = true;
      this.#rooms.render();
    });
    for (const type of ["tracks", "peer-joined", "peer-left"]) {
      link.session.addEventListener(type, () => {
        for (const tile of this.#tiles) {
          tile.tracksChanged(room, link.session.roomTracks);
        }
        this.#rooms.render();
      });
    }
    link.session.addEventListener("closed", () => {
      if (this.links.get(room) === link) {
        this.links.delete(room);
        this.#rooms.render();
      }
    });
    this.#rooms.render();
    try {
      await link.join();
    } catch (err) {
      this.links.delete(room);
      link.session.leave();
      this.#notices.show(t("wall.roomJoinFailed", { room, reason: err.message }), "error");
    }
    this.#rooms.render();
  }

  leaveRoom(room) {
    const link = this.links.get(room);
    if (!link) {
      return;
    }
    for (const tile of this.#tiles) {
      if (tile.requested?.kind === "peer" && tile.requested.room === room) {
        tile.clear();
      }
    }
    this.links.delete(room);
    link.leave();
    this.#rooms.render();
  }

  // ---- grid ----

  #buildGrid() {
    const grid = byId("wall-grid");
    for (let index = 0; index < Math.max(...LAYOUTS); index += 1) {
      const tile = new WallTile(index, this);
      this.#tiles.push(tile);
      grid.append(tile.root);
    }
  }

  setLayout(layout) {
    if (!LAYOUTS.includes(layout)) {
      throw new Error(`unsupported layout ${layout}: expected one of ${LAYOUTS.join(", ")}`);
    }
    this.#layout = layout;
    const grid = byId("wall-grid");
    grid.dataset.layout = String(layout);
    grid.style.setProperty("--columns", String(Math.sqrt(layout)));
    for (const tile of this.#tiles) {
      const visible = tile.index < layout;
      tile.root.hidden = !visible;
      // Tiles outside the layout are cleared, so the hub stops their cameras.
      if (!visible && tile.requested) {
        tile.clear();
      }
    }
    if (this.#enlarged && this.#enlarged.index >= layout) {
      this.#enlarged = null;
      grid.removeAttribute("data-enlarged");
    }
    for (const node of byId("layout-buttons").querySelectorAll("button[data-layout]")) {
      node.setAttribute("aria-pressed", String(Number(node.dataset.layout) === layout));
    }
    if (this.#selected >= layout) {
      this.#selected = 0;
    }
    this.#renderSelection();
    this.saveLayout();
  }

  select(tile) {
    this.#selected = tile.index;
    this.#renderSelection();
  }

  #renderSelection() {
    for (const tile of this.#tiles) {
      tile.root.classList.toggle("selected", tile.index === this.#selected);
    }
  }

  /**
   * Puts a camera or a participant into `target`, or else into the selected
   * tile when it is empty, or the first empty tile, or the selected one.
   */
  place(source, target = null) {
    const visible = this.#tiles.slice(0, this.#layout);
    if (source.kind === "camera") {
      const existing = visible.find((tile) => tile.cameraId === source.camera);
      if (existing && existing !== target) {
        // A camera is current once; point at the tile that has it.
        this.select(existing);
        existing.root.classList.remove("flash");
        void existing.root.offsetWidth;
        existing.root.classList.add("flash");
        return;
      }
    }
    let tile = target;
    if (!tile) {
      const selected = this.#tiles[this.#selected];
      const firstEmpty = visible.find((candidate) => candidate.requested === null);
      tile = selected.requested === null ? selected : (firstEmpty ?? selected);
    }
    tile.assign(source);
    const nextEmpty = visible.find((t) => t.requested === null);
    this.select(nextEmpty ?? tile);
    this.saveLayout();
  }

  toggleEnlarge(tile) {
    const grid = byId("wall-grid");
    if (this.#enlarged === tile) {
      this.#enlarged = null;
      grid.removeAttribute("data-enlarged");
      tile.setEnlarged(false);
      return;
    }
    if (tile.requested === null) {
      return;
    }
    this.#enlarged?.setEnlarged(false);
    this.#enlarged = tile;
    grid.dataset.enlarged = String(tile.index);
    tile.setEnlarged(true);
  }

  // ---- persistence ----

  #readLayout() {
    try {
      const saved = JSON.parse(readStorage(STORAGE_KEY) ?? "{}");
      return {
        layout: Number(saved.layout),
        cameras: Array.isArray(saved.cameras) ? saved.cameras : [],
      };
    } catch {
      return { layout: DEFAULT_LAYOUT, cameras: [] };
    }
  }

  saveLayout() {
    if (this.#tiles.length === 0) {
      return;
    }
    const cameras = this.#tiles.slice(0, this.#layout).map((tile) => tile.cameraId);
    writeStorage(STORAGE_KEY, JSON.stringify({ layout: this.#layout, cameras }));
  }

  // ---- push to a session, assign a task ----

  async openPushDialog(tile) {
    const camera = this.directory.cameras.get(tile.cameraId);
    if (!camera) {
      return;
    }
    this.#pushTile = tile;
    const dialog = byId("push-dialog");
    byId("push-title").textContent = t("wall.push.title", { name: camera.name });
    await this.#rooms.refresh();
    await this.#renderPushRooms(camera);
    if (!dialog.open) {
      dialog.showModal();
    }
  }

  async #renderPushRooms(camera) {
    const list = byId("push-rooms");
    const rooms = this.#rooms.rooms;
    const pushed = await Promise.all(
      rooms.map((room) =>
        callHub("GET", `/api/rooms/${encodeURIComponent(room.id)}/cameras`)
          .then((data) => data.cameras.filter((entry) => entry.camera === camera.id))
          .catch(() => []),
      ),
    );
    list.replaceChildren(
      ...rooms.map((room, index) => {
        const item = element("li", "push-room");
        item.dataset.room = room.id;
        const name = this.#org.roomName(room.id);
        item.append(
          element("span", "push-room-name", name ? `${name} (${room.id})` : room.id),
          element("span", "room-count", t("wall.roomPeers", { count: room.peers.length })),
        );
        const pushedThere = pushed[index];
        if (pushedThere.length > 0) {
          item.append(
            button("push-withdraw", t("wall.push.withdraw"), () =>
              this.#withdraw(room.id, camera, pushedThere),
            ),
          );
        } else {
          item.append(
            button("push-send primary", t("wall.push.send"), () => this.#push(room.id, camera)),
          );
        }
        return item;
      }),
    );
    byId("push-empty").hidden = rooms.length > 0;
  }

  async #push(room, camera) {
    try {
      await pushCamera(room, camera.id, "main");
      const where = this.#org.roomName(room) ?? room;
      this.#notices.show(t("wall.push.done", { name: camera.name, room: where }));
    } catch (err) {
      const text = t("wall.push.failed", { name: camera.name, room, reason: err.message });
      this.#notices.show(text, "error");
    }
    await this.#renderPushRooms(camera);
  }

  async #withdraw(room, camera, entries) {
    try {
      for (const entry of entries) {
        await removeCamera(room, camera.id, entry.stream);
      }
      const where = this.#org.roomName(room) ?? room;
      this.#notices.show(t("wall.push.withdrawn", { name: camera.name, room: where }));
    } catch (err) {
      const text = t("wall.push.failed", { name: camera.name, room, reason: err.message });
      this.#notices.show(text, "error");
    }
    await this.#renderPushRooms(camera);
  }

  assignFromTile(tile) {
    const camera = this.directory.cameras.get(tile.cameraId);
    if (!camera || !this.#tasks) {
      return;
    }
    this.#tasks.openForm({
      camera: { id: camera.id, name: camera.name },
      title: t("wall.taskTitle", { name: camera.name }),
    });
  }

  #relabel() {
    document.title = t("wall.title");
    for (const tile of this.#tiles) {
      tile.render();
    }
    this.#tree.render(true);
    this.#rooms.render(true);
    const state = byId("connection-state");
    state.textContent = t(`state.${state.dataset.state}`);
  }
}

initLanguage();
translatePage();
bindLanguageToggle(byId("lang-toggle"));
new WallApp().start();
