// Statistics page: polls GET /api/stats every 2 s and shows rooms,
// participants and per-track relay counters in tables.

import {
  bindLanguageToggle,
  currentLanguage,
  initLanguage,
  onLanguageChange,
  t,
  translatePage,
} from "./i18n.js";

const POLL_INTERVAL_MS = 2_000;
const FETCH_TIMEOUT_MS = 5_000;
const STATS_URL = "api/stats";

function cell(tag, text, className = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) {
    node.className = className;
  }
  return node;
}

function row(cells, className = "") {
  const tr = document.createElement("tr");
  if (className) {
    tr.className = className;
  }
  tr.append(...cells);
  return tr;
}

function numberFormat() {
  return new Intl.NumberFormat(currentLanguage() === "zh" ? "zh-CN" : "en-US");
}

function formatCount(value) {
  return Number.isFinite(value) ? numberFormat().format(value) : "–";
}

function formatBytes(value) {
  if (!Number.isFinite(value)) {
    return "–";
  }
  const units = ["B", "KiB", "MiB", "GiB"];
  let scaled = value;
  let unit = 0;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit += 1;
  }
  return `${scaled.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

// NOTE: the hub reports `bitrate` in bits per second; this page assumes so.
function formatBitrate(value) {
  if (!Number.isFinite(value)) {
    return "–";
  }
  if (value >= 1_000_000) {
    return `${(value / 1_000_000).toFixed(2)} Mbit/s`;
  }
  return `${(value / 1_000).toFixed(0)} kbit/s`;
}

function translated(prefix, value) {
  const key = `${prefix}.${value}`;
  const text = t(key);
  return text === key ? String(value ?? "–") : text;
}

function table(headers) {
  const node = document.createElement("table");
  const head = document.createElement("thead");
  head.append(
    row(headers.map(([key, numeric]) => cell("th", t(key), numeric ? "number" : ""))),
  );
  const body = document.createElement("tbody");
  node.append(head, body);
  return { node, body };
}

function renderParticipants(room) {
  const peers = Array.isArray(room.peers) ? room.peers : [];
  const { node, body } = table([
    ["stats.peerName", false],
    ["stats.peerId", false],
  ]);
  node.classList.add("peers");
  for (const peer of peers) {
    body.append(row([cell("td", peer.name ?? ""), cell("td", peer.id ?? "", "ids")]));
  }
  return [cell("h3", t("stats.participants", { count: peers.length })), node];
}

function renderTracks(room) {
  const tracks = Array.isArray(room.tracks) ? room.tracks : [];
  const names = new Map((room.peers ?? []).map((p) => [p.id, p.name]));
  const heading = cell("h3", t("stats.tracks", { count: tracks.length }));
  if (tracks.length === 0) {
    return [heading, cell("p", t("stats.noTracks"), "empty")];
  }
  const { node, body } = table([
    ["stats.trackId", false],
    ["stats.publisher", false],
    ["stats.kind", false],
    ["stats.source", false],
    ["stats.codec", false],
    ["stats.direction", false],
    ["stats.packets", true],
    ["stats.bytes", true],
    ["stats.bitrate", true],
    ["stats.drops", true],
    ["stats.keyframeRequests", true],
  ]);
  for (const track of tracks) {
    const incoming = track.in ?? {};
    body.append(
      row(
        [
          cell("td", track.id ?? "", "ids"),
          cell("td", names.get(track.peer) ?? track.peer ?? ""),
          cell("td", translated("kind", track.kind)),
          cell("td", translated("source", track.source)),
          cell("td", track.codec ?? "–"),
          cell("td", t("stats.in")),
          cell("td", formatCount(incoming.packets), "number"),
          cell("td", formatBytes(incoming.bytes), "number"),
          cell("td", formatBitrate(incoming.bitrate), "number"),
          cell("td", "", "number"),
          cell("td", "", "number"),
        ],
        "track-row",
      ),
    );
    for (const out of Array.isArray(track.out) ? track.out : []) {
      const subscriber = names.get(out.peer) ?? out.peer ?? "";
      body.append(
        row(
          [
            cell("td", ""),
            cell("td", ""),
            cell("td", ""),
            cell("td", ""),
            cell("td", ""),
            cell("td", t("stats.out", { name: subscriber })),
            cell("td", formatCount(out.packets), "number"),
            cell("td", formatBytes(out.bytes), "number"),
            cell("td", formatBitrate(out.bitrate), "number"),
            cell("td", formatCount(out.drops), out.drops > 0 ? "number warn" : "number"),
            cell("td", formatCount(out.keyframe_requests), "number"),
          ],
          "out-row",
        ),
      );
    }
  }
  return [heading, node];
}

function renderRooms(container, data) {
  const rooms = Array.isArray(data?.rooms) ? data.rooms : [];
  if (rooms.length === 0) {
    container.replaceChildren(cell("p", t("stats.noRooms"), "empty"));
    return;
  }
  const sections = rooms.map((room) => {
    const section = document.createElement("section");
    section.className = "room";
    section.dataset.room = room.id ?? "";
    section.append(
      cell("h2", t("stats.room", { id: room.id ?? "" })),
      ...renderParticipants(room),
      ...renderTracks(room),
    );
    return section;
  });
  container.replaceChildren(...sections);
}

class StatsPage {
  #container = document.getElementById("rooms");
  #status = document.getElementById("stats-status");
  #data = null;
  #updatedAt = null;
  #error = null;

  start() {
    onLanguageChange(() => this.#render());
    this.#poll();
  }

  async #poll() {
    if (!document.hidden) {
      await this.#fetchOnce();
    }
    setTimeout(() => this.#poll(), POLL_INTERVAL_MS);
  }

  async #fetchOnce() {
    try {
      const response = await fetch(STATS_URL, {
        cache: "no-store",
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status} ${response.statusText}`);
      }
      this.#data = await response.json();
      this.#updatedAt = new Date();
      this.#error = null;
    } catch (err) {
      this.#error = err.message || err.name;
    }
    this.#render();
  }

  #render() {
    if (this.#error !== null) {
      this.#status.textContent = t("stats.fetchFailed", { reason: this.#error });
      this.#status.dataset.level = "error";
    } else if (this.#updatedAt !== null) {
      const time = this.#updatedAt.toLocaleTimeString(
        currentLanguage() === "zh" ? "zh-CN" : "en-GB",
      );
      this.#status.textContent = t("stats.updated", { time });
      this.#status.dataset.level = "ok";
    }
    if (this.#data !== null) {
      renderRooms(this.#container, this.#data);
    }
  }
}

initLanguage();
translatePage();
bindLanguageToggle(document.getElementById("lang-toggle"));
new StatsPage().start();
