// Conference page: join form, header, controls, and the glue between
// HubSession (signaling.js) and ConferenceView (conference.js).
//
// URL parameters: room (prefills the room ID), name (prefills the display
// name), token (signed token for hubs that require one), lang (zh or en),
// debug=1 (exposes window.__hub for reading WebRTC statistics).

import { ConferenceView } from "./conference.js";
import {
  bindLanguageToggle,
  hasString,
  initLanguage,
  onLanguageChange,
  t,
  translatePage,
} from "./i18n.js";
import { ModerationPanel, SessionTap, SOURCE_ACTIONS } from "./moderation.js";
import { TaskPanel, setApiToken } from "./tasks.js";
import {
  CLIENT_ERRORS,
  HubError,
  HubSession,
  validateName,
  validateRoom,
} from "./signaling.js";

const NAME_STORAGE_KEY = "hub.name";
const NOTICE_LIFETIME_MS = 8_000;
const MAX_NOTICES = 4;

const CAMERA_CONSTRAINTS = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 25, max: 30 },
};
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true };

function byId(id) {
  const node = document.getElementById(id);
  if (!node) {
    throw new Error(`page element #${id} is missing from index.html`);
  }
  return node;
}

function hubSocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function readStoredName() {
  try {
    return localStorage.getItem(NAME_STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
}

function storeName(name) {
  try {
    localStorage.setItem(NAME_STORAGE_KEY, name);
  } catch {
    // Storage blocked: the name is simply not prefilled next time.
  }
}

/** Text for an error event or HubError: the translated code, then the details. */
function describeError({ code, message }) {
  const key = `error.${code}`;
  if (hasString(key)) {
    return message ? `${t(key)} (${message})` : t(key);
  }
  return message || code;
}

class Notices {
  #container;

  constructor(container) {
    this.#container = container;
  }

  show(text, level = "info") {
    const notice = document.createElement("div");
    notice.className = `notice notice-${level}`;
    notice.setAttribute("role", level === "error" ? "alert" : "status");
    const body = document.createElement("span");
    body.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "notice-close";
    close.textContent = "×";
    close.setAttribute("aria-label", t("notice.dismiss"));
    close.addEventListener("click", () => notice.remove());
    notice.append(body, close);
    this.#container.append(notice);
    while (this.#container.children.length > MAX_NOTICES) {
      this.#container.firstElementChild.remove();
    }
    if (level !== "error") {
      setTimeout(() => notice.remove(), NOTICE_LIFETIME_MS);
    }
  }

  clear() {
    this.#container.replaceChildren();
  }
}

/** Acquires camera and microphone, falling back to whichever one works. */
async function openLocalMedia(notices) {
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: AUDIO_CONSTRAINTS,
      video: CAMERA_CONSTRAINTS,
    });
  } catch (bothError) {
    const reason = bothError.message || bothError.name;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO_CONSTRAINTS });
      notices.show(t("notice.audioOnly", { reason }), "warning");
      return stream;
    } catch {
      // Try video alone next.
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS });
      notices.show(t("notice.videoOnly", { reason }), "warning");
      return stream;
    } catch {
      notices.show(t("notice.noMedia", { reason }), "warning");
      return new MediaStream();
    }
  }
}

class ConferenceApp {
  #elements;
  #notices;
  #view;
  #session = null;
  #room = "";
  #name = "";
  #token = "";
  #camera = null; // MediaStream from getUserMedia
  #screen = null; // MediaStream from getDisplayMedia
  #micMuted = false;
  #cameraMuted = false;
  #leftReason = "left"; // left, removed or failed
  #moderation;
  #tasks = null; // TaskPanel of the joined room
  #tap = new SessionTap();
  // Local sources handed to the session, which the role may publish now.
  #publishing = new Set();

  constructor() {
    this.#elements = {
      joinView: byId("join-view"),
      joinForm: byId("join-form"),
      roomInput: byId("room-input"),
      nameInput: byId("name-input"),
      joinError: byId("join-error"),
      joinButton: byId("join-button"),
      conferenceView: byId("conference-view"),
      grid: byId("grid"),
      selfArea: byId("self-area"),
      leftView: byId("left-view"),
      leftMessage: byId("left-message"),
      rejoinButton: byId("rejoin-button"),
      controls: byId("controls"),
      micButton: byId("mic-button"),
      cameraButton: byId("camera-button"),
      shareButton: byId("share-button"),
      leaveButton: byId("leave-button"),
      playAudio: byId("play-audio"),
      roomInfo: byId("room-info"),
      roomName: byId("room-name"),
      participants: byId("participants"),
      state: byId("connection-state"),
    };
    this.#notices = new Notices(byId("notices"));
    this.#view = new ConferenceView({
      grid: this.#elements.grid,
      selfArea: this.#elements.selfArea,
      onAutoplayBlocked: (blocked) => {
        this.#elements.playAudio.hidden = !blocked;
      },
    });
    this.#moderation = new ModerationPanel({
      tap: this.#tap,
      container: this.#elements.conferenceView,
      callbacks: {
        onActions: (actions) => this.#applyActions(actions),
        onMutedByHost: (source) => this.#muteByHost(source),
        onSessionToken: (token) => this.#useSessionToken(token),
        notify: (text, level) => this.#notices.show(text, level),
      },
    });
  }

  start() {
    const params = new URLSearchParams(location.search);
    const el = this.#elements;
    el.roomInput.value = params.get("room") ?? "";
    el.nameInput.value = params.get("name") ?? readStoredName();
    // An invite link (/join?room=...&invite=...) carries the token as "invite".
    this.#token = params.get("token") ?? params.get("invite") ?? "";

    el.joinForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#joinFromForm();
    });
    el.micButton.addEventListener("click", () => this.#toggleMicrophone());
    el.cameraButton.addEventListener("click", () => this.#toggleCamera());
    el.shareButton.addEventListener("click", () => this.#toggleScreen());
    el.leaveButton.addEventListener("click", () => this.#leave("left"));
    el.rejoinButton.addEventListener("click", () => this.#join());
    el.playAudio.addEventListener("click", () => this.#view.resumePlayback());
    byId("tasks-button").addEventListener("click", () => this.#toggleTasks());
    window.addEventListener("pagehide", () => this.#session?.leave());
    onLanguageChange(() => this.#relabel());

    if (params.get("debug") === "1") {
      this.#exposeDebugHook();
    }
    this.#showJoin();
    this.#renderControls();
    (el.roomInput.value ? el.nameInput : el.roomInput).focus();
  }

  // ---- join and leave ----

  #joinFromForm() {
    const el = this.#elements;
    const room = el.roomInput.value.trim();
    const name = el.nameInput.value.trim();
    try {
      validateRoom(room);
    } catch {
      this.#showJoinError(t("join.invalidRoom"));
      el.roomInput.focus();
      return;
    }
    try {
      validateName(name);
    } catch {
      this.#showJoinError(t("join.invalidName"));
      el.nameInput.focus();
      return;
    }
    el.joinError.hidden = true;
    this.#room = room;
    this.#name = name;
    storeName(name);
    const url = new URL(location.href);
    url.searchParams.set("room", room);
    history.replaceState(null, "", url);
    this.#join();
  }

  async #join() {
    const el = this.#elements;
    el.joinButton.disabled = true;
    el.rejoinButton.disabled = true;
    try {
      if (!this.#camera) {
        this.#camera = await openLocalMedia(this.#notices);
      }
      this.#startSession();
      await this.#session.join();
    } catch (err) {
      // Errors sent by the hub have already been shown through the "error"
      // event; failures found by the client itself have not.
      const fromClient = Object.values(CLIENT_ERRORS).includes(err.code);
      if (!(err instanceof HubError) || fromClient) {
        const reason = err instanceof HubError ? describeError(err) : err.message;
        this.#notices.show(t("join.failed", { room: this.#room, reason }), "error");
      }
      this.#session?.leave();
      this.#showLeft("failed");
    } finally {
      el.joinButton.disabled = false;
      el.rejoinButton.disabled = false;
    }
  }

  #startSession() {
    const session = new HubSession({
      url: hubSocketUrl(),
      room: this.#room,
      name: this.#name,
      token: this.#token,
    });
    this.#session = session;
    this.#tap.attach(session);
    this.#startTasks(session);
    this.#moderation.reset();
    this.#view.clear();
    this.#view.setSelf({ peer: "self", name: this.#name });
    this.#showConference();

    for (const track of this.#camera.getTracks()) {
      const source = track.kind === "audio" ? "microphone" : "camera";
      session.addTrack(track, source, this.#camera);
      if (source === "camera") {
        this.#view.showLocal("camera", track);
      }
    }
    if (this.#camera.getVideoTracks().length === 0) {
      this.#view.showLocal("camera", null);
    }
    this.#publishing = new Set(
      this.#camera.getTracks().map((track) => (track.kind === "audio" ? "microphone" : "camera")),
    );
    if (this.#micMuted) {
      session.setMuted("microphone", true);
    }
    if (this.#cameraMuted) {
      session.setMuted("camera", true);
    }
    this.#view.setLocalMuted("microphone", this.#micMuted);
    this.#view.setLocalMuted("camera", this.#cameraMuted);

    const on = (type, handler) =>
      session.addEventListener(type, (event) => {
        if (session === this.#session) {
          handler(event.detail);
        }
      });
    on("joined", (detail) => {
      this.#view.setSelf({ peer: detail.peer, name: this.#name });
      this.#view.setPeers(detail.peers);
      this.#view.updateTracks(detail.tracks);
      this.#renderHeader();
    });
    on("peer-joined", ({ peer }) => {
      this.#view.addPeer(peer);
      this.#notices.show(t("notice.peerJoined", { name: peer.name }));
      this.#renderHeader();
    });
    on("peer-left", ({ peer, reason }) => {
      const name = this.#elements.grid.querySelector(`[data-peer="${CSS.escape(peer)}"]`)
        ?.dataset.name;
      this.#view.removePeer(peer);
      const key = {
        timeout: "notice.peerTimeout",
        removed: "notice.peerRemoved",
      }[reason] ?? "notice.peerLeft";
      this.#notices.show(t(key, { name: name ?? peer }));
      this.#renderHeader();
    });
    on("track-added", (detail) => this.#view.addTrack(detail));
    on("track-removed", (detail) => this.#view.removeTrack(detail));
    on("tracks", ({ tracks }) => this.#view.updateTracks(tracks));
    on("connection-state", ({ state }) => this.#renderState(state));
    on("error", (detail) => {
      if (this.#moderation.isExpectedRefusal(detail)) {
        return;
      }
      this.#notices.show(t("notice.hubError", { text: describeError(detail) }), "error");
    });
    on("closed", ({ code }) => {
      if (code === 1000) {
        return;
      }
      this.#showLeft(code === 4409 ? "removed" : "failed");
    });
  }

  // ---- session controls (moderation.js) ----

  // Hands the session exactly the local sources the role may publish now:
  // none in the waiting room, and in a lecture no microphone before the host
  // gives the floor. Called before HubSession handles `joined`, so refused
  // sources are never offered.
  #applyActions(actions) {
    const session = this.#session;
    if (!session || !this.#camera) {
      return;
    }
    for (const track of this.#camera.getTracks()) {
      const source = track.kind === "audio" ? "microphone" : "camera";
      const allowed = actions.includes(SOURCE_ACTIONS[source]);
      if (allowed && !this.#publishing.has(source)) {
        this.#publishing.add(source);
        session.addTrack(track, source, this.#camera);
      } else if (!allowed && this.#publishing.has(source)) {
        this.#publishing.delete(source);
        session.removeTrack(source);
      }
    }
    if (this.#screen && !actions.includes(SOURCE_ACTIONS.screen)) {
      this.#stopScreen();
    }
  }

  async #muteByHost(source) {
    if (source === "microphone" && !this.#micMuted) {
      await this.#toggleMicrophone();
    } else if (source === "camera" && !this.#cameraMuted) {
      await this.#toggleCamera();
    }
  }

  // The hub used up the invite; later joins (the rejoin button, a reload)
  // need the session token it gave in exchange.
  #useSessionToken(token) {
    this.#token = token;
    const url = new URL(location.href);
    url.searchParams.delete("invite");
    url.searchParams.set("token", token);
    history.replaceState(null, "", url);
  }

  // ---- task panel (tasks.js) ----

  #startTasks(session) {
    this.#tasks?.stop();
    setApiToken(this.#token);
    this.#tasks = new TaskPanel({
      container: byId("task-panel"),
      room: this.#room,
      person: this.#name,
      notify: (text, level) => this.#notices.show(text, level),
      onOverdue: (count) => {
        byId("tasks-button").dataset.overdue = String(count);
      },
    });
    this.#tasks.attachSession(session);
    this.#tasks.start();
  }

  #stopTasks() {
    this.#tasks?.stop();
    this.#tasks = null;
    byId("task-panel").hidden = true;
    byId("tasks-button").setAttribute("aria-pressed", "false");
  }

  #toggleTasks() {
    const panel = byId("task-panel");
    panel.hidden = !panel.hidden;
    byId("tasks-button").setAttribute("aria-pressed", String(!panel.hidden));
  }

  #leave(reason) {
    this.#session?.leave();
    this.#session = null;
    this.#stopScreen();
    this.#showLeft(reason);
  }

  // ---- controls ----

  async #toggleMicrophone() {
    this.#micMuted = !this.#micMuted;
    await this.#applyMute("microphone", this.#micMuted);
  }

  async #toggleCamera() {
    this.#cameraMuted = !this.#cameraMuted;
    await this.#applyMute("camera", this.#cameraMuted);
  }

  async #applyMute(source, muted) {
    for (const track of this.#camera?.getTracks() ?? []) {
      if ((track.kind === "audio") === (source === "microphone")) {
        track.enabled = !muted;
      }
    }
    this.#view.setLocalMuted(source, muted);
    this.#renderControls();
    try {
      await this.#session?.setMuted(source, muted);
    } catch (err) {
      this.#notices.show(t("notice.hubError", { text: describeError(err) }), "error");
    }
  }

  async #toggleScreen() {
    if (this.#screen) {
      this.#stopScreen();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
    } catch (err) {
      // A NotAllowedError means the user closed the picker, which needs no message.
      if (err.name !== "NotAllowedError") {
        this.#notices.show(t("notice.shareFailed", { reason: err.message || err.name }), "error");
      }
      return;
    }
    this.#screen = stream;
    const video = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0];
    if (video) {
      // The browser's own "stop sharing" bar ends the track.
      video.addEventListener("ended", () => {
        if (this.#screen === stream) {
          this.#stopScreen();
        }
      });
      video.contentHint = "detail";
      this.#view.showLocal("screen", video);
      this.#session?.addTrack(video, "screen", stream);
    }
    if (audio) {
      this.#session?.addTrack(audio, "screen-audio", stream);
    }
    this.#renderControls();
  }

  #stopScreen() {
    const stream = this.#screen;
    if (!stream) {
      return;
    }
    this.#screen = null;
    for (const track of stream.getTracks()) {
      track.stop();
    }
    this.#session?.removeTrack("screen");
    this.#session?.removeTrack("screen-audio");
    this.#view.hideLocal("screen");
    this.#renderControls();
  }

  // ---- rendering ----

  #showJoin() {
    const el = this.#elements;
    el.joinView.hidden = false;
    el.conferenceView.hidden = true;
    el.leftView.hidden = true;
    el.controls.hidden = true;
    el.roomInfo.hidden = true;
    el.state.hidden = true;
    el.participants.hidden = true;
  }

  #showConference() {
    const el = this.#elements;
    el.joinView.hidden = true;
    el.conferenceView.hidden = false;
    el.leftView.hidden = true;
    el.controls.hidden = false;
    el.roomInfo.hidden = false;
    el.state.hidden = false;
    el.participants.hidden = false;
    this.#renderHeader();
    this.#renderControls();
  }

  #showLeft(reason) {
    const el = this.#elements;
    this.#leftReason = reason;
    this.#stopTasks();
    this.#view.clear();
    this.#view.hideLocal("camera");
    this.#view.hideLocal("screen");
    for (const track of this.#camera?.getTracks() ?? []) {
      track.stop();
    }
    this.#camera = null;
    el.conferenceView.hidden = true;
    el.controls.hidden = true;
    el.joinView.hidden = true;
    el.leftView.hidden = false;
    el.participants.hidden = true;
    this.#renderLeft();
    if (reason === "left") {
      this.#renderState("closed");
    }
  }

  #renderLeft() {
    const keys = { removed: "left.removed", failed: "left.failed" };
    const key = keys[this.#leftReason] ?? "left.heading";
    this.#elements.leftMessage.textContent = t(key, { room: this.#room });
  }

  #renderHeader() {
    const el = this.#elements;
    el.roomName.textContent = this.#room;
    // The participant count includes this client.
    el.participants.textContent = t("header.participants", { count: this.#view.peerCount + 1 });
    document.title = `${this.#room} · ${t("app.title")}`;
  }

  #renderState(state) {
    const el = this.#elements.state;
    el.dataset.state = state;
    el.textContent = t(`state.${state}`);
  }

  #renderControls() {
    const el = this.#elements;
    const label = (button, key, pressed) => {
      button.textContent = t(key);
      button.setAttribute("aria-pressed", String(pressed));
    };
    label(el.micButton, this.#micMuted ? "controls.unmute" : "controls.mute", this.#micMuted);
    label(
      el.cameraButton,
      this.#cameraMuted ? "controls.cameraOn" : "controls.cameraOff",
      this.#cameraMuted,
    );
    const sharing = this.#screen !== null;
    label(el.shareButton, sharing ? "controls.stopShare" : "controls.share", sharing);
    el.shareButton.disabled = !navigator.mediaDevices?.getDisplayMedia;
  }

  #relabel() {
    this.#view.relabel();
    this.#renderControls();
    if (this.#session) {
      this.#renderHeader();
      this.#renderState(this.#session.state);
    } else {
      document.title = t("app.title");
    }
    if (!this.#elements.leftView.hidden) {
      this.#renderLeft();
    }
  }

  #showJoinError(text) {
    this.#elements.joinError.textContent = text;
    this.#elements.joinError.hidden = false;
  }

  // Test and diagnostics hook with read-only access to WebRTC statistics.
  #exposeDebugHook() {
    const hook = {
      state: () => this.#session?.state ?? "closed",
      peerId: () => this.#session?.peerId ?? null,
      // Returns the stats entries of the "up" or "down" connection as plain objects.
      getStats: async (name) => {
        const pc = this.#session?.connections[name];
        if (!pc) {
          return [];
        }
        const report = await pc.getStats();
        return [...report.values()].map((entry) => ({ ...entry }));
      },
    };
    Object.defineProperty(window, "__hub", { value: Object.freeze(hook) });
  }
}

initLanguage();
translatePage();
bindLanguageToggle(byId("lang-toggle"));
new ConferenceApp().start();
