// Client side of the hub's signaling protocol (docs/protocol.md, version 1).
//
// HubSession owns the WebSocket and the two peer connections: "up" carries the
// local tracks to the hub (this client offers), "down" carries the room's tracks
// from the hub (the hub offers, this client answers). It contains no DOM code:
// the page listens to its events and draws the tiles.
//
// Events (CustomEvent, payload in `detail`):
//   joined            {peer, room, peers, tracks}
//   peer-joined       {peer: {id, name}}
//   peer-left         {peer, reason}
//   tracks            {tracks}  the room's full track list, mute flags included
//   track-added       {track, stream, info}  info: {id, mid, peer, name, kind,
//                     source, muted}
//   track-removed     {track, info}
//   connection-state  {state, previous}  state: connecting, connected,
//                     reconnecting, failed or closed
//   error             {code, message, id}  an `error` from the hub, or a local
//                     failure with a code of the client's own (see CLIENT_ERRORS)
//   closed            {code, reason}  the session ended for good

export const PROTOCOL_VERSION = 1;
export const SOURCES = ["camera", "microphone", "screen", "screen-audio"];

const PING_INTERVAL_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;
// Delays before each reconnection attempt. The session gives up after the last one.
const RECONNECT_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000];
const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_NAME_LENGTH = 64;

// WebSocket close codes that end the session instead of starting a reconnect.
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_REMOVED = 4409;

// Codes for failures detected by the client itself. The hub's own codes are
// listed in docs/protocol.md.
export const CLIENT_ERRORS = {
  socket: "socket-failed",
  timeout: "request-timed-out",
  negotiation: "negotiation-failed",
  reconnect: "reconnect-failed",
};

export class HubError extends Error {
  constructor(code, message, id = undefined) {
    super(message);
    this.name = "HubError";
    this.code = code;
    this.id = id;
  }
}

export function validateRoom(room) {
  if (typeof room !== "string" || !ROOM_PATTERN.test(room)) {
    throw new HubError(
      "bad-room",
      `invalid room id ${JSON.stringify(room)}: use 1 to 64 letters, digits, '-', '_' or '.'`,
    );
  }
}

export function validateName(name) {
  if (typeof name !== "string" || name.trim() === "" || name.length > MAX_NAME_LENGTH) {
    throw new HubError(
      "bad-name",
      `invalid display name ${JSON.stringify(name)}: use 1 to ${MAX_NAME_LENGTH} characters`,
    );
  }
}

export class HubSession extends EventTarget {
  #url;
  #room;
  #name;
  #token;
  #messageListeners = new Set();
  #subscribe;

  #socket = null;
  #up = null;
  #down = null;
  #peerId = null;
  #peers = new Map(); // peer id -> {id, name}
  #roomTracks = []; // the latest `tracks` list from the hub
  #iceServers = [];

  // Local media, keyed by source: {track, stream, transceiver}.
  #local = new Map();
  // Transceivers of the up connection that carry nothing now. A later addTrack
  // of the same kind reuses one, so the SDP does not grow with each share.
  #retired = [];
  #upChain = Promise.resolve();
  #upDirty = false;
  #upRunning = false;
  // Incremented by every teardown, so work started on old connections stops.
  #generation = 0;

  // Down media: mid -> info of the hub track carried there, from the latest offer.
  #downMap = new Map();
  // mid -> {track, info} of the tracks reported with track-added.
  #downActive = new Map();
  #downChain = Promise.resolve();
  #pendingIce = { up: [], down: [] };

  #pending = new Map(); // request id -> {resolve, reject, timer, type}
  #nextId = 1;
  #pingTimer = null;
  #reconnectTimer = null;
  #reconnectAttempt = 0;
  #state = "closed";
  #closing = false;
  #everJoined = false;

  /**
   * @param {object} options
   * @param {string} options.url  WebSocket URL of the hub, e.g. wss://hub:8443/ws
   * @param {string} options.room  room id
   * @param {string} options.name  display name shown to the others
   * @param {string} [options.token]  signed token, when the hub requires one
   * @param {"all"|"none"} [options.subscribe]
   */
  constructor({ url, room, name, token = "", subscribe = "all" }) {
    super();
    validateRoom(room);
    validateName(name);
    if (subscribe !== "all" && subscribe !== "none") {
      throw new HubError(
        "bad-subscribe",
        `invalid subscribe mode ${JSON.stringify(subscribe)}: expected "all" or "none"`,
      );
    }
    this.#url = url;
    this.#room = room;
    this.#name = name.trim();
    this.#token = token;
    this.#subscribe = subscribe;
  }

  get room() {
    return this.#room;
  }

  get name() {
    return this.#name;
  }

  get peerId() {
    return this.#peerId;
  }

  get state() {
    return this.#state;
  }

  /** Participants other than this one, as {id, name}. */
  get peers() {
    return [...this.#peers.values()];
  }

  get roomTracks() {
    return this.#roomTracks;
  }

  /** The two peer connections, for getStats in diagnostics. Either may be null. */
  get connections() {
    return { up: this.#up, down: this.#down };
  }

  /**
   * Opens the socket and joins the room. Resolves with the `joined` message, or
   * rejects with a HubError if the hub rejects the join or cannot be reached.
   */
  async join() {
    if (this.#socket !== null) {
      throw new HubError("already-joined", `session for room ${this.#room} is already open`);
    }
    this.#closing = false;
    this.#setState("connecting");
    return this.#connect();
  }

  /**
   * Sends `track` to the hub as `source` (camera, microphone, screen or
   * screen-audio), replacing the track published for that source before.
   */
  async addTrack(track, source, stream = undefined) {
    if (!SOURCES.includes(source)) {
      throw new HubError(
        "bad-source",
        `invalid source ${JSON.stringify(source)}: expected one of ${SOURCES.join(", ")}`,
      );
    }
    const entry = this.#local.get(source) ?? { transceiver: null };
    entry.track = track;
    entry.stream = stream ?? new MediaStream([track]);
    this.#local.set(source, entry);
    return this.#renegotiateUp();
  }

  /** Stops publishing `source`, so the hub ends that track for the others. */
  async removeTrack(source) {
    const entry = this.#local.get(source);
    if (!entry) {
      return;
    }
    this.#local.delete(source);
    if (entry.transceiver && this.#up && this.#up.signalingState !== "closed") {
      await entry.transceiver.sender.replaceTrack(null);
      entry.transceiver.direction = "inactive";
      this.#retired.push(entry.transceiver);
    }
    return this.#renegotiateUp();
  }

  /**
   * Mutes or unmutes a published source. The track is disabled (it sends
   * silence or black frames) and the hub sends the new state to the others in
   * a `tracks` event.
   */
  async setMuted(source, muted) {
    const entry = this.#local.get(source);
    if (entry) {
      entry.track.enabled = !muted;
      entry.muted = Boolean(muted);
    }
    if (!this.#joined()) {
      return;
    }
    await this.#request({ type: "mute", source, muted: Boolean(muted) });
  }

  async subscribeTracks(ids) {
    await this.#request({ type: "subscribe", tracks: [...ids] });
  }

  async unsubscribeTracks(ids) {
    await this.#request({ type: "unsubscribe", tracks: [...ids] });
  }

  /** Leaves the room and closes everything. The session cannot be reused. */
  leave() {
    if (this.#closing) {
      return;
    }
    this.#closing = true;
    if (this.#socket && this.#socket.readyState === WebSocket.OPEN) {
      this.#send({ type: "leave" });
    }
    this.#teardown(1000, "left");
    this.#setState("closed");
    this.#emit("closed", { code: 1000, reason: "left" });
  }

  /**
   * Calls `listener` with every message from the hub, before this session
   * handles it (session controls, task events and types this class does not
   * know). Returns a function that removes the listener.
   */
  onMessage(listener) {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  /**
   * Sends a message as it is, without an `id` (a reply is not awaited).
   * Returns false if the socket is not open.
   */
  send(message) {
    if (!this.#socket || this.#socket.readyState !== WebSocket.OPEN) {
      return false;
    }
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  // ---- connection and reconnection ----

  #connect() {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(this.#url);
      } catch (err) {
        reject(new HubError(CLIENT_ERRORS.socket, `cannot open ${this.#url}: ${err.message}`));
        return;
      }
      this.#socket = socket;
      let opened = false;

      socket.addEventListener("open", () => {
        opened = true;
        const join = {
          type: "join",
          version: PROTOCOL_VERSION,
          room: this.#room,
          name: this.#name,
          subscribe: this.#subscribe,
        };
        if (this.#token) {
          join.token = this.#token;
        }
        this.#request(join, "joined").then(resolve, reject);
      });

      socket.addEventListener("message", (event) => this.#onMessage(socket, event));

      socket.addEventListener("close", (event) => {
        if (socket !== this.#socket) {
          return;
        }
        if (!opened) {
          reject(
            new HubError(
              CLIENT_ERRORS.socket,
              `cannot connect to ${this.#url} (close code ${event.code}): ` +
                "check that the hub is running and reachable",
            ),
          );
        }
        this.#onSocketClosed(event);
      });
    });
  }

  #onSocketClosed(event) {
    this.#socket = null;
    this.#rejectPending(
      new HubError(CLIENT_ERRORS.socket, `connection to the hub closed (code ${event.code})`),
    );
    this.#teardown(null, "");
    if (this.#closing) {
      return;
    }
    if (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_REMOVED) {
      this.#closing = true;
      this.#setState(event.code === CLOSE_REMOVED ? "closed" : "failed");
      this.#emit("closed", { code: event.code, reason: event.reason });
      return;
    }
    if (!this.#everJoined) {
      this.#closing = true;
      this.#setState("failed");
      this.#emit("closed", { code: event.code, reason: event.reason });
      return;
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    if (this.#reconnectTimer !== null || this.#closing) {
      return;
    }
    if (this.#reconnectAttempt >= RECONNECT_DELAYS_MS.length) {
      this.#closing = true;
      this.#setState("failed");
      this.#emitError(
        CLIENT_ERRORS.reconnect,
        `gave up reconnecting to room ${this.#room} after ${this.#reconnectAttempt} attempts`,
      );
      this.#emit("closed", { code: 0, reason: "reconnect failed" });
      return;
    }
    const delay = RECONNECT_DELAYS_MS[this.#reconnectAttempt];
    this.#reconnectAttempt += 1;
    this.#setState("reconnecting");
    this.#reconnectTimer = setTimeout(async () => {
      this.#reconnectTimer = null;
      try {
        await this.#connect();
      } catch (err) {
        // The close handler of the failed socket has scheduled the next
        // attempt; a rejected join that left the socket open needs it here.
        if (this.#socket !== null && !this.#closing) {
          this.#socket.close(1000, "join failed");
        }
      }
    }, delay);
  }

  /** Drops the socket (if `code` is given) and both peer connections. */
  #teardown(code, reason) {
    clearInterval(this.#pingTimer);
    this.#pingTimer = null;
    if (this.#reconnectTimer !== null && this.#closing) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
    if (code !== null && this.#socket) {
      const socket = this.#socket;
      this.#socket = null;
      socket.close(code, reason);
    }
    for (const [mid, { track, info }] of this.#downActive) {
      this.#downActive.delete(mid);
      this.#emit("track-removed", { track, info });
    }
    this.#downMap.clear();
    for (const pc of [this.#up, this.#down]) {
      if (pc) {
        pc.close();
      }
    }
    this.#up = null;
    this.#down = null;
    this.#retired = [];
    for (const entry of this.#local.values()) {
      entry.transceiver = null;
    }
    this.#pendingIce = { up: [], down: [] };
    this.#peers.clear();
    this.#peerId = null;
    this.#upChain = Promise.resolve();
    this.#downChain = Promise.resolve();
    this.#upDirty = false;
    this.#upRunning = false;
    this.#generation += 1;
  }

  #joined() {
    return this.#peerId !== null && this.#socket !== null;
  }

  // ---- messages ----

  #send(message) {
    if (!this.#socket || this.#socket.readyState !== WebSocket.OPEN) {
      throw new HubError(
        CLIENT_ERRORS.socket,
        `cannot send ${message.type}: the connection to the hub is not open`,
      );
    }
    this.#socket.send(JSON.stringify(message));
  }

  /**
   * Sends a message with a fresh `id` and resolves with the reply of type
   * `replyType` (or `ok`), rejecting on an `error` that carries the same id.
   */
  #request(message, replyType = "ok") {
    const id = String(this.#nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new HubError(
            CLIENT_ERRORS.timeout,
            `no reply to ${message.type} within ${REQUEST_TIMEOUT_MS / 1000} s`,
            id,
          ),
        );
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer, type: replyType, pc: message.pc });
      try {
        this.#send({ ...message, id });
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err);
      }
    });
  }

  #settle(message) {
    let id = message.id;
    if (id === undefined || !this.#pending.has(id)) {
      // A reply without our id: match the oldest request waiting for this type.
      id = undefined;
      for (const [key, waiting] of this.#pending) {
        if (waiting.type === message.type) {
          id = key;
          break;
        }
      }
    }
    const waiting = id === undefined ? undefined : this.#pending.get(id);
    if (!waiting) {
      return false;
    }
    this.#pending.delete(id);
    clearTimeout(waiting.timer);
    if (message.type === "error") {
      waiting.reject(new HubError(message.code, message.message, message.id));
    } else {
      waiting.resolve(message);
    }
    return true;
  }

  #rejectPending(error) {
    for (const waiting of this.#pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.#pending.clear();
  }

  #onMessage(socket, event) {
    if (socket !== this.#socket) {
      return;
    }
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (err) {
      this.#emitError("bad-json", `hub sent a frame that is not JSON: ${err.message}`);
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      this.#emitError("bad-message", "hub sent a message without a string 'type'");
      return;
    }
    for (const listener of this.#messageListeners) {
      try {
        listener(message);
      } catch (err) {
        console.error("hub message listener failed", err);
      }
    }
    switch (message.type) {
      case "joined":
        this.#onJoined(message);
        break;
      case "peer-joined":
        this.#onPeerJoined(message);
        break;
      case "peer-left":
        this.#onPeerLeft(message);
        break;
      case "tracks":
        this.#onTracks(message.tracks);
        break;
      case "offer":
        this.#onOffer(message);
        break;
      case "answer":
        // Settled below: the up negotiation waits for it.
        this.#settle(message);
        break;
      case "ice":
        this.#onRemoteIce(message);
        break;
      case "ok":
        this.#settle(message);
        break;
      case "pong":
        break;
      case "error":
        this.#settle(message);
        this.#emitError(message.code, message.message, message.id);
        break;
      default:
        // Newer hubs may add message types; ignoring them keeps this client working.
        break;
    }
  }

  #onJoined(message) {
    this.#peerId = message.peer;
    if (typeof message.token === "string" && message.token) {
      // A single-use invite was exchanged for a session token: reconnects
      // must present that one.
      this.#token = message.token;
    }
    this.#peers.clear();
    for (const peer of message.peers ?? []) {
      this.#peers.set(peer.id, { id: peer.id, name: peer.name });
    }
    this.#iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
    this.#everJoined = true;
    this.#reconnectAttempt = 0;
    this.#createConnections();
    this.#pingTimer = setInterval(() => {
      try {
        this.#send({ type: "ping" });
      } catch {
        // The close handler reconnects; nothing to do here.
      }
    }, PING_INTERVAL_MS);
    this.#settle(message);
    this.#emit("joined", {
      peer: this.#peerId,
      room: message.room ?? this.#room,
      peers: this.peers,
      tracks: message.tracks ?? [],
    });
    this.#onTracks(message.tracks ?? []);
    this.#updateState();
    if (this.#local.size > 0) {
      this.#renegotiateUp().then(() => this.#repeatMutes());
    }
  }

  // After a reconnect the hub knows nothing of earlier mutes, so they are sent
  // again once the tracks are published.
  #repeatMutes() {
    for (const [source, entry] of this.#local) {
      if (entry.muted && this.#joined()) {
        this.#request({ type: "mute", source, muted: true }).catch((err) =>
          this.#emitError(err.code ?? CLIENT_ERRORS.socket, err.message),
        );
      }
    }
  }

  #onPeerJoined(message) {
    const peer = message.peer;
    if (!peer || typeof peer.id !== "string") {
      return;
    }
    this.#peers.set(peer.id, { id: peer.id, name: peer.name ?? peer.id });
    this.#emit("peer-joined", { peer: { id: peer.id, name: peer.name ?? peer.id } });
    // An offer that arrived before this message may name the peer's tracks.
    if (this.#down && this.#down.remoteDescription) {
      this.#reconcileDown(this.#down);
    }
  }

  #onPeerLeft(message) {
    const id = message.peer;
    this.#peers.delete(id);
    // The hub removes the peer's tracks in its next offer; drop them now so the
    // tiles go away without waiting for that renegotiation.
    for (const [mid, active] of this.#downActive) {
      if (active.info.peer === id) {
        this.#downActive.delete(mid);
        this.#emit("track-removed", active);
      }
    }
    this.#emit("peer-left", { peer: id, reason: message.reason ?? "left" });
  }

  #onTracks(tracks) {
    if (!Array.isArray(tracks)) {
      return;
    }
    this.#roomTracks = tracks;
    const muted = new Map(tracks.map((t) => [t.id, Boolean(t.muted)]));
    for (const { info } of this.#downActive.values()) {
      if (muted.has(info.id)) {
        info.muted = muted.get(info.id);
      }
    }
    this.#emit("tracks", { tracks });
  }

  // ---- peer connections ----

  #createConnections() {
    const config = { iceServers: this.#iceServers, bundlePolicy: "max-bundle" };
    this.#up = this.#newConnection("up", config);
    this.#down = this.#newConnection("down", config);
  }

  #newConnection(name, config) {
    const pc = new RTCPeerConnection(config);
    pc.addEventListener("icecandidate", (event) => {
      if (pc !== this.#connectionNamed(name)) {
        return;
      }
      const candidate = event.candidate ? event.candidate.toJSON() : null;
      try {
        this.#send({ type: "ice", pc: name, candidate });
      } catch {
        // Socket gone: the reconnect builds new connections.
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.#connectionNamed(name)) {
        return;
      }
      if (pc.connectionState === "failed" && !this.#closing && this.#socket) {
        // ICE could not recover: start over with a fresh join.
        this.#emitError(
          CLIENT_ERRORS.negotiation,
          `media connection "${name}" to the hub failed; rejoining room ${this.#room}`,
        );
        this.#socket.close(1000, "media failed");
        return;
      }
      this.#updateState();
    });
    return pc;
  }

  #connectionNamed(name) {
    return name === "up" ? this.#up : this.#down;
  }

  async #onRemoteIce(message) {
    const pc = this.#connectionNamed(message.pc);
    if (!pc) {
      return;
    }
    if (!pc.remoteDescription) {
      this.#pendingIce[message.pc].push(message.candidate);
      return;
    }
    await this.#addRemoteCandidate(pc, message.pc, message.candidate);
  }

  async #addRemoteCandidate(pc, name, candidate) {
    try {
      if (candidate) {
        await pc.addIceCandidate(candidate);
      } else {
        await pc.addIceCandidate();
      }
    } catch (err) {
      this.#emitError(
        CLIENT_ERRORS.negotiation,
        `cannot add the hub's ICE candidate on "${name}": ${err.message}`,
      );
    }
  }

  async #flushIce(pc, name) {
    const queued = this.#pendingIce[name];
    this.#pendingIce[name] = [];
    for (const candidate of queued) {
      await this.#addRemoteCandidate(pc, name, candidate);
    }
  }

  // ---- up: this client offers ----

  /**
   * Queues one publish round. Calls made while a round runs are folded into a
   * single follow-up round, so bursts of changes cost one offer.
   */
  #renegotiateUp() {
    this.#upDirty = true;
    if (this.#upRunning || !this.#joined()) {
      return this.#upChain;
    }
    this.#upChain = this.#upChain.then(() => this.#publishRounds());
    return this.#upChain;
  }

  async #publishRounds() {
    const generation = this.#generation;
    this.#upRunning = true;
    try {
      while (this.#upDirty && this.#joined() && generation === this.#generation) {
        this.#upDirty = false;
        await this.#publishOnce();
      }
    } catch (err) {
      if (generation === this.#generation) {
        const code = err instanceof HubError ? err.code : CLIENT_ERRORS.negotiation;
        this.#emitError(code, `publishing to room ${this.#room} failed: ${err.message}`);
      }
    } finally {
      if (generation === this.#generation) {
        this.#upRunning = false;
      }
    }
  }

  async #publishOnce() {
    const pc = this.#up;
    for (const [source, entry] of this.#local) {
      if (entry.transceiver) {
        if (entry.transceiver.sender.track !== entry.track) {
          await entry.transceiver.sender.replaceTrack(entry.track);
        }
        entry.transceiver.direction = "sendonly";
        continue;
      }
      const reusable = this.#retired.findIndex(
        (t) => t.receiver.track.kind === entry.track.kind,
      );
      if (reusable >= 0) {
        entry.transceiver = this.#retired.splice(reusable, 1)[0];
        await entry.transceiver.sender.replaceTrack(entry.track);
        entry.transceiver.direction = "sendonly";
      } else {
        entry.transceiver = pc.addTransceiver(entry.track, {
          direction: "sendonly",
          streams: [entry.stream],
        });
      }
      entry.source = source;
    }

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const sources = {};
    for (const [source, entry] of this.#local) {
      if (entry.transceiver.mid !== null) {
        sources[entry.transceiver.mid] = source;
      }
    }
    const answer = await this.#request(
      { type: "publish", sdp: pc.localDescription.sdp, sources },
      "answer",
    );
    if (pc !== this.#up) {
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await this.#flushIce(pc, "up");
    this.#updateState();
  }

  // ---- down: the hub offers ----

  #onOffer(message) {
    if (message.pc !== undefined && message.pc !== "down") {
      this.#emitError("bad-message", `hub sent an offer for pc "${message.pc}", expected "down"`);
      return;
    }
    // Answer each offer in arrival order, after the previous one is applied.
    this.#downChain = this.#downChain.then(() => this.#answerOffer(message));
  }

  async #answerOffer(message) {
    const pc = this.#down;
    if (!pc) {
      return;
    }
    const map = new Map();
    for (const entry of message.tracks ?? []) {
      map.set(String(entry.mid), entry);
    }
    try {
      await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (pc !== this.#down) {
        return;
      }
      this.#send({ type: "answer", pc: "down", sdp: pc.localDescription.sdp });
      await this.#flushIce(pc, "down");
    } catch (err) {
      if (pc === this.#down) {
        this.#emitError(
          CLIENT_ERRORS.negotiation,
          `cannot answer the hub's offer for room ${this.#room}: ${err.message}`,
        );
      }
      return;
    }
    this.#downMap = map;
    this.#reconcileDown(pc);
    this.#updateState();
  }

  /**
   * Compares the media sections the latest offer names with the tracks already
   * reported, and emits track-removed and track-added for the differences.
   */
  #reconcileDown(pc) {
    const receivers = new Map();
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.mid !== null) {
        receivers.set(transceiver.mid, transceiver.receiver);
      }
    }
    const muted = new Map(this.#roomTracks.map((t) => [t.id, Boolean(t.muted)]));

    for (const [mid, active] of this.#downActive) {
      const wanted = this.#downMap.get(mid);
      if (!wanted || wanted.track !== active.info.id) {
        this.#downActive.delete(mid);
        this.#emit("track-removed", active);
      }
    }
    for (const [mid, entry] of this.#downMap) {
      // Skip tracks of peers that have left (a late offer may still name
      // them) and this client's own tracks, which it shows from the camera.
      // A camera pushed into the room has no peer: its track is known from
      // the room's track list.
      const roomTrack = this.#roomTracks.find((t) => t.id === entry.track);
      const known = this.#peers.has(entry.peer) || roomTrack !== undefined;
      if (this.#downActive.has(mid) || !known || entry.peer === this.#peerId) {
        continue;
      }
      const receiver = receivers.get(mid);
      if (!receiver) {
        this.#emitError(
          "bad-message",
          `hub's offer names media section ${mid} for track ${entry.track}, ` +
            "but its SDP has no such section",
        );
        continue;
      }
      const info = {
        id: entry.track,
        mid,
        peer: entry.peer,
        name: this.#peers.get(entry.peer)?.name ?? roomTrack?.label ?? entry.peer,
        kind: entry.kind ?? receiver.track.kind,
        source: entry.source ?? (receiver.track.kind === "audio" ? "microphone" : "camera"),
        muted: muted.get(entry.track) ?? false,
      };
      const track = receiver.track;
      const active = { track, info };
      this.#downActive.set(mid, active);
      this.#emit("track-added", { track, stream: new MediaStream([track]), info });
    }
  }

  // ---- state and events ----

  #updateState() {
    if (this.#closing || this.#state === "failed") {
      return;
    }
    if (!this.#joined()) {
      return;
    }
    // The up connection counts once there is something to publish, the down
    // connection once the hub has made an offer.
    const states = [];
    if (this.#up && this.#local.size > 0) {
      states.push(this.#up.connectionState);
    }
    if (this.#down && this.#down.remoteDescription) {
      states.push(this.#down.connectionState);
    }
    let state = "connected";
    if (states.includes("disconnected")) {
      state = "reconnecting";
    } else if (states.some((s) => s === "new" || s === "connecting")) {
      state = this.#state === "reconnecting" ? "reconnecting" : "connecting";
    }
    this.#setState(state);
  }

  #setState(state) {
    if (state === this.#state) {
      return;
    }
    const previous = this.#state;
    this.#state = state;
    this.#emit("connection-state", { state, previous });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #emitError(code, message, id = undefined) {
    this.#emit("error", { code, message, id });
  }
}
