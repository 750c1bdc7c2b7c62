// The video wall: one tile per participant's camera (with its microphone) and
// one per shared screen, plus the local preview. DOM only: it is fed by app.js
// from HubSession events.
//
// Tiles carry data-peer (the hub's peer id) and data-source ("camera",
// "screen", or "camera-feed" for a surveillance camera a dispatcher pushed);
// the local preview also has data-local. Remote audio plays through one
// <audio> element per track inside the tile.

import { t } from "./i18n.js";

// Shape assumed for every tile when choosing the grid's columns.
const TILE_ASPECT = 16 / 9;

// Audio sources are shown in the tile of the video they belong to.
const TILE_SOURCE = {
  camera: "camera",
  microphone: "camera",
  screen: "screen",
  "screen-audio": "screen",
  // A surveillance camera pushed into the session by a dispatcher.
  "camera-feed": "camera-feed",
  "camera-audio": "camera-feed",
};

function tileSourceOf(source) {
  return TILE_SOURCE[source] ?? "camera";
}

function element(tag, className, attributes = {}) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  return node;
}

/** Starts playback, reporting a rejected autoplay through `onBlocked`. */
async function startPlayback(media, onBlocked) {
  try {
    await media.play();
  } catch (err) {
    // An AbortError means a newer srcObject replaced this one, which needs no
    // report.
    if (err.name === "NotAllowedError") {
      onBlocked(media);
    }
  }
}

class Tile {
  constructor({ peer, source, name, local = false }) {
    this.peer = peer;
    this.source = source;
    this.name = name;
    this.local = local;
    this.videoTrack = null;
    this.videoMuted = false;
    this.audioMuted = false;
    this.audio = new Map(); // hub track id or source -> <audio>

    this.root = element("figure", `tile tile-${source}`, {
      "data-peer": peer,
      "data-source": source,
    });
    if (local) {
      this.root.dataset.local = "true";
      this.root.classList.add("local");
    }
    this.video = element("video", "tile-video");
    this.video.autoplay = true;
    this.video.playsInline = true;
    // Sound plays through the <audio> elements, so the video stays muted and
    // may start without a user gesture.
    this.video.muted = true;

    this.placeholder = element("div", "tile-placeholder");
    this.initial = element("span", "tile-initial");
    this.placeholderText = element("span", "tile-placeholder-text");
    this.placeholder.append(this.initial, this.placeholderText);

    this.caption = element("figcaption", "tile-caption");
    this.nameLabel = element("span", "tile-name");
    this.micMarker = element("span", "tile-marker tile-marker-mic");
    this.cameraMarker = element("span", "tile-marker tile-marker-camera");
    this.caption.append(this.nameLabel, this.micMarker, this.cameraMarker);

    this.root.append(this.video, this.placeholder, this.caption);
    this.render();
  }

  setVideo(track, onBlocked) {
    this.videoTrack = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) {
      startPlayback(this.video, onBlocked);
    }
    this.render();
  }

  addAudio(key, track, onBlocked) {
    this.removeAudio(key);
    const audio = element("audio", "tile-audio");
    audio.autoplay = true;
    audio.srcObject = new MediaStream([track]);
    this.audio.set(key, audio);
    this.root.append(audio);
    startPlayback(audio, onBlocked);
  }

  removeAudio(key) {
    const audio = this.audio.get(key);
    if (audio) {
      audio.srcObject = null;
      audio.remove();
      this.audio.delete(key);
    }
  }

  get empty() {
    return this.videoTrack === null && this.audio.size === 0;
  }

  render() {
    let label = this.name;
    if (this.local && this.source === "camera") {
      label = t("tile.you", { name: this.name });
    } else if (this.source === "screen") {
      label = t("tile.screenOf", { name: this.name });
    }
    this.nameLabel.textContent = label;
    this.root.title = label;
    this.root.dataset.name = this.name;
    this.initial.textContent = Array.from(this.name.trim())[0] ?? "?";

    const showVideo = this.videoTrack !== null && !this.videoMuted;
    this.root.classList.toggle("has-video", showVideo);
    this.placeholder.hidden = showVideo;
    this.placeholderText.textContent = this.videoMuted ? t("tile.cameraOff") : t("tile.noVideo");

    this.micMarker.textContent = t("tile.micMuted");
    this.micMarker.hidden = !this.audioMuted;
    this.cameraMarker.textContent = t("tile.cameraOff");
    this.cameraMarker.hidden = !(this.videoMuted && this.source === "camera");
    this.root.dataset.micMuted = String(this.audioMuted);
    this.root.dataset.cameraMuted = String(this.videoMuted);
  }

  destroy() {
    this.video.srcObject = null;
    for (const key of [...this.audio.keys()]) {
      this.removeAudio(key);
    }
    this.root.remove();
  }
}

export class ConferenceView {
  #grid;
  #selfArea;
  #tiles = new Map(); // "peer|source" -> Tile
  #localTiles = new Map(); // source -> Tile
  #names = new Map(); // peer id -> display name
  #self = { peer: "self", name: "" };
  #blockedMedia = new Set();
  #onAutoplayBlocked;

  /**
   * @param {object} options
   * @param {HTMLElement} options.grid  container of the remote tiles
   * @param {HTMLElement} options.selfArea  container of the local previews
   * @param {(blocked: boolean) => void} options.onAutoplayBlocked  called when
   *   the browser refuses to start audio until the user interacts, and again
   *   with false once playback was resumed
   */
  constructor({ grid, selfArea, onAutoplayBlocked = () => {} }) {
    this.#grid = grid;
    this.#selfArea = selfArea;
    this.#onAutoplayBlocked = onAutoplayBlocked;
    new ResizeObserver(() => this.#layout()).observe(grid);
  }

  setSelf({ peer, name }) {
    this.#self = { peer, name };
    for (const tile of this.#localTiles.values()) {
      tile.peer = peer;
      tile.name = name;
      tile.root.dataset.peer = peer;
      tile.render();
    }
  }

  /** Shows a local track (camera or screen) in the self-view area. */
  showLocal(source, track) {
    let tile = this.#localTiles.get(source);
    if (!tile) {
      tile = new Tile({ ...this.#self, source, local: true });
      this.#localTiles.set(source, tile);
      this.#selfArea.append(tile.root);
    }
    tile.setVideo(track, (media) => this.#blocked(media));
  }

  hideLocal(source) {
    const tile = this.#localTiles.get(source);
    if (tile) {
      tile.destroy();
      this.#localTiles.delete(source);
    }
  }

  setLocalMuted(source, muted) {
    const tile = this.#localTiles.get("camera");
    if (!tile) {
      return;
    }
    if (source === "microphone") {
      tile.audioMuted = muted;
    } else if (source === "camera") {
      tile.videoMuted = muted;
    }
    tile.render();
  }

  /** Replaces the participant list, e.g. after (re)joining. */
  setPeers(peers) {
    const ids = new Set(peers.map((p) => p.id));
    for (const id of [...this.#names.keys()]) {
      if (!ids.has(id)) {
        this.removePeer(id);
      }
    }
    for (const peer of peers) {
      this.addPeer(peer);
    }
  }

  /** Adds a camera tile for the participant, with a placeholder until video arrives. */
  addPeer({ id, name }) {
    this.#names.set(id, name);
    const tile = this.#tile(id, "camera");
    if (tile.name !== name) {
      tile.name = name;
      tile.render();
    }
  }

  removePeer(id) {
    this.#names.delete(id);
    for (const [key, tile] of this.#tiles) {
      if (tile.peer === id) {
        tile.destroy();
        this.#tiles.delete(key);
      }
    }
    this.#layout();
  }

  addTrack({ track, info }) {
    if (!this.#names.has(info.peer)) {
      this.#names.set(info.peer, info.name ?? info.peer);
    }
    const tile = this.#tile(info.peer, tileSourceOf(info.source));
    if (track.kind === "video") {
      tile.videoMuted = Boolean(info.muted);
      tile.setVideo(track, (media) => this.#blocked(media));
    } else {
      tile.audioMuted = Boolean(info.muted);
      tile.addAudio(info.id, track, (media) => this.#blocked(media));
      tile.render();
    }
  }

  removeTrack({ track, info }) {
    const key = `${info.peer}|${tileSourceOf(info.source)}`;
    const tile = this.#tiles.get(key);
    if (!tile) {
      return;
    }
    if (track.kind === "video" && tile.videoTrack === track) {
      tile.setVideo(null, () => {});
    } else {
      tile.removeAudio(info.id);
      tile.audioMuted = false;
      tile.render();
    }
    // A screen tile lives only as long as the screen is shared, and a pushed
    // camera's tile as long as it is pushed. The camera tile of a participant
    // stays until the participant leaves.
    if ((tile.source === "screen" || tile.source === "camera-feed") && tile.empty) {
      tile.destroy();
      this.#tiles.delete(key);
      this.#layout();
    }
  }

  /** Applies the mute flags of the hub's track list to the tiles. */
  updateTracks(tracks) {
    const flags = new Map(); // tile key -> {audio, video}
    for (const track of tracks) {
      const key = `${track.peer}|${tileSourceOf(track.source)}`;
      const entry = flags.get(key) ?? { audio: false, video: false };
      if (track.kind === "audio") {
        entry.audio ||= Boolean(track.muted);
      } else {
        entry.video ||= Boolean(track.muted);
      }
      flags.set(key, entry);
    }
    for (const [key, tile] of this.#tiles) {
      const entry = flags.get(key) ?? { audio: false, video: false };
      tile.audioMuted = entry.audio;
      tile.videoMuted = entry.video;
      tile.render();
    }
  }

  /** Re-renders labels, e.g. after a language change. */
  relabel() {
    for (const tile of [...this.#tiles.values(), ...this.#localTiles.values()]) {
      tile.render();
    }
  }

  /** Removes every remote tile (the local previews stay). */
  clear() {
    for (const tile of this.#tiles.values()) {
      tile.destroy();
    }
    this.#tiles.clear();
    this.#names.clear();
    this.#layout();
  }

  /** Retries playback of media the browser blocked; call from a click handler. */
  async resumePlayback() {
    const media = [...this.#blockedMedia];
    this.#blockedMedia.clear();
    await Promise.all(media.map((m) => startPlayback(m, (again) => this.#blocked(again))));
    if (this.#blockedMedia.size === 0) {
      this.#onAutoplayBlocked(false);
    }
  }

  get peerCount() {
    return this.#names.size;
  }

  #tile(peer, source) {
    const key = `${peer}|${source}`;
    let tile = this.#tiles.get(key);
    if (!tile) {
      tile = new Tile({ peer, source, name: this.#names.get(peer) ?? peer });
      this.#tiles.set(key, tile);
      this.#insertSorted(tile);
      this.#layout();
    }
    return tile;
  }

  // Screens first (they carry the material under discussion), then cameras in
  // the order the participants joined.
  #insertSorted(tile) {
    if (tile.source === "screen") {
      this.#grid.prepend(tile.root);
    } else {
      this.#grid.append(tile.root);
    }
  }

  #blocked(media) {
    this.#blockedMedia.add(media);
    this.#onAutoplayBlocked(true);
  }

  // Picks the column count that gives the largest 16:9 tiles in the grid's
  // current size. A screen tile counts as four cells because it spans two
  // columns and two rows when there is room.
  #layout() {
    let cells = 0;
    for (const tile of this.#tiles.values()) {
      cells += tile.source === "screen" ? 4 : 1;
    }
    cells = Math.max(1, cells);
    const width = this.#grid.clientWidth || 16;
    const height = this.#grid.clientHeight || 9;
    let columns = 1;
    let best = 0;
    for (let candidate = 1; candidate <= cells; candidate += 1) {
      const candidateRows = Math.ceil(cells / candidate);
      const tileWidth = Math.min(width / candidate, (height / candidateRows) * TILE_ASPECT);
      if (tileWidth > best) {
        best = tileWidth;
        columns = candidate;
      }
    }
    const rows = Math.ceil(cells / columns);
    this.#grid.style.setProperty("--columns", String(columns));
    this.#grid.style.setProperty("--rows", String(rows));
    this.#grid.toggleAttribute("data-wide-screens", columns >= 2 && rows >= 2);
    this.#grid.dataset.count = String(this.#tiles.size);
  }
}
