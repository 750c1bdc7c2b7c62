// Session controls of hearings, lectures and joint sessions (docs/protocol.md,
// "Session controls"): waiting room, admission, side room, lock, floor, raised
// hands, roll call, host mutes, recording notice and chat.
//
// Two parts:
// - SessionTap passes every message of the current HubSession (signaling.js)
//   to the panel, and sends the control messages through it.
// - ModerationPanel keeps the session state from those frames and draws the
//   side panel: status lines, host buttons, the waiting list, participants with
//   their buttons, and the chat.
//
// Control messages are sent without an `id`. HubSession matches replies that
// carry an unknown id to its own pending requests, so an id here could settle
// the wrong request. Errors come back without an id and reach the page through
// HubSession's "error" event.

import { currentLanguage, onLanguageChange } from "./i18n.js";

/** The action of hub/roles.py that publishing each source needs. */
export const SOURCE_ACTIONS = {
  camera: "publish_camera",
  microphone: "publish_microphone",
  screen: "share_screen",
  "screen-audio": "share_screen",
};

const MAX_CHAT_SHOWN = 100;
const MAX_CHAT_LENGTH = 2000;

const STRINGS = {
  zh: {
    "panel.title": "会场控制",
    "kind.joint": "联合会商",
    "kind.mediation": "视频调解",
    "kind.lecture": "培训讲座",
    "status.waiting": "您在等候室中，调解员准许后即可入场。",
    "status.locked": "会场已锁定，不再接受新的参会方",
    "status.recording": "本次会议正在录制",
    "status.sideRoom": "{host} 正与 {peer} 单独谈话",
    "status.sideRoomSelf": "单独谈话中：其他参会方看不到也听不到您",
    "status.floor": "发言：{name}",
    "status.spotlight": "点名：{name}",
    "host.lock": "锁定会场",
    "host.unlock": "解除锁定",
    "host.recordStart": "开始录制",
    "host.recordStop": "停止录制",
    "host.muteAll": "全体静音",
    "hand.raise": "举手",
    "hand.lower": "放下手",
    "waiting.title": "等候入场（{count}）",
    "waiting.empty": "无人等候",
    "peers.title": "参会方（{count}）",
    "peer.hand": "举手",
    "peer.self": "我",
    "chat.from": "{name}：",
    "action.admit": "准许入场",
    "action.give-floor": "指定发言",
    "action.take-floor": "收回发言",
    "action.roll-call": "点名",
    "action.side-room": "单独谈话",
    "action.return": "结束单独谈话",
    "action.mute-peer": "静音",
    "action.remove": "移出",
    "chat.title": "文字交流",
    "chat.placeholder": "输入消息，回车发送",
    "chat.send": "发送",
    "notice.admitted": "已准许您入场",
    "notice.floorGiven": "您已获准发言，摄像头和麦克风已开启",
    "notice.floorTaken": "您的发言已结束",
    "notice.mutedByHost": "{name} 已将您静音",
    "notice.removed": "{name} 已将您移出会场",
    "notice.recordingOn": "{name} 开始录制本次会议",
    "notice.recordingOff": "{name} 停止了录制",
    "notice.locked": "{name} 锁定了会场",
    "notice.unlocked": "{name} 解除了会场锁定",
    "notice.hand": "{name} 举手",
    "notice.waiting": "{name} 在等候室等候入场",
    "role.chair": "主持人",
    "role.member": "分会场",
    "role.dispatcher": "调度员",
    "role.mediator": "调解员",
    "role.party": "当事人",
    "role.trainer": "主讲人",
    "role.viewer": "收看人员",
    "role.observer": "旁听人员",
  },
  en: {
    "panel.title": "Session controls",
    "kind.joint": "Joint session",
    "kind.mediation": "Mediation",
    "kind.lecture": "Lecture",
    "status.waiting": "You are in the waiting room. The mediator will let you in.",
    "status.locked": "The room is locked: no one new can join",
    "status.recording": "This session is being recorded",
    "status.sideRoom": "{host} is talking with {peer} in private",
    "status.sideRoomSelf": "Private talk: the others neither see nor hear you",
    "status.floor": "Floor: {name}",
    "status.spotlight": "Roll call: {name}",
    "host.lock": "Lock room",
    "host.unlock": "Unlock room",
    "host.recordStart": "Start recording",
    "host.recordStop": "Stop recording",
    "host.muteAll": "Mute everyone",
    "hand.raise": "Raise hand",
    "hand.lower": "Lower hand",
    "waiting.title": "Waiting ({count})",
    "waiting.empty": "No one is waiting",
    "peers.title": "Participants ({count})",
    "peer.hand": "Hand raised",
    "peer.self": "you",
    "chat.from": "{name}: ",
    "action.admit": "Admit",
    "action.give-floor": "Give floor",
    "action.take-floor": "Take floor",
    "action.roll-call": "Roll call",
    "action.side-room": "Talk privately",
    "action.return": "End private talk",
    "action.mute-peer": "Mute",
    "action.remove": "Remove",
    "chat.title": "Chat",
    "chat.placeholder": "Type a message, Enter to send",
    "chat.send": "Send",
    "notice.admitted": "You were let in",
    "notice.floorGiven": "You have the floor: camera and microphone are on",
    "notice.floorTaken": "Your floor was taken back",
    "notice.mutedByHost": "{name} muted you",
    "notice.removed": "{name} removed you from the room",
    "notice.recordingOn": "{name} started recording this session",
    "notice.recordingOff": "{name} stopped recording",
    "notice.locked": "{name} locked the room",
    "notice.unlocked": "{name} unlocked the room",
    "notice.hand": "{name} raised a hand",
    "notice.waiting": "{name} is waiting to be let in",
    "role.chair": "Chair",
    "role.member": "Member room",
    "role.dispatcher": "Dispatcher",
    "role.mediator": "Mediator",
    "role.party": "Party",
    "role.trainer": "Trainer",
    "role.viewer": "Viewer",
    "role.observer": "Observer",
  },
};

function tr(key, params = {}) {
  const table = STRINGS[currentLanguage()] ?? STRINGS.zh;
  const template = table[key] ?? STRINGS.zh[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : match,
  );
}

const PANEL_STYLE = `
.conference-view.has-moderation {
  display: grid;
  grid-template-columns: minmax(0, 1fr) 20rem;
  /* One row as tall as the view: the video grid must not grow with its videos. */
  grid-template-rows: minmax(0, 1fr);
}
.moderation-panel {
  display: flex;
  flex-direction: column;
  gap: 0.6rem;
  min-height: 0;
  overflow-y: auto;
  padding: 0.6rem;
  background: var(--bg-raised);
  border-left: 1px solid var(--border);
}
.moderation-panel h3 {
  margin: 0;
  font-size: 0.95rem;
  color: var(--text-dim);
}
.mod-status p {
  margin: 0 0 0.3rem;
  padding: 0.3rem 0.5rem;
  border-radius: var(--radius);
  background: #1f2630;
}
.mod-status .mod-waiting,
.mod-status .mod-recording {
  border-left: 3px solid var(--warn);
}
.mod-buttons {
  display: flex;
  flex-wrap: wrap;
  gap: 0.3rem;
}
.mod-list {
  list-style: none;
  margin: 0;
  padding: 0;
}
.mod-list li {
  padding: 0.3rem 0;
  border-bottom: 1px solid var(--border);
}
.mod-list li[data-hand="true"] .mod-name::after {
  content: " ✋";
}
.mod-list li[data-floor="true"] .mod-name {
  color: var(--ok);
}
.mod-list button {
  font-size: 0.8rem;
  padding: 0.1rem 0.4rem;
}
.mod-chat-log {
  list-style: none;
  margin: 0;
  padding: 0;
  max-height: 14rem;
  overflow-y: auto;
  font-size: 0.9rem;
}
.mod-chat-log time {
  color: var(--text-dim);
  margin-right: 0.3rem;
}
.mod-chat-form {
  display: flex;
  gap: 0.3rem;
}
.mod-chat-form input {
  flex: 1;
  min-width: 0;
}
`;

function element(tag, attributes = {}, text = undefined) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function chatTime(at) {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) {
    return "";
  }
  return date.toLocaleTimeString(currentLanguage() === "en" ? "en-GB" : "zh-CN", {
    hour: "2-digit",
    minute: "2-digit",
  });
}

// ---- the session tap ----

export class SessionTap {
  #session = null;
  #detach = null;
  #listeners = new Set();

  /** Makes `session` the HubSession the panel reads and writes. */
  attach(session) {
    this.#detach?.();
    this.#session = session;
    this.#detach = session.onMessage((message) => {
      for (const listener of this.#listeners) {
        listener(message);
      }
    });
  }

  /** Calls `listener` with each message from the hub, before HubSession handles it. */
  onMessage(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Sends a control message; returns false if the session's socket is not open. */
  send(message) {
    return this.#session ? this.#session.send(message) : false;
  }
}

// ---- the panel ----

export class ModerationPanel {
  #tap;
  #container;
  #callbacks;
  #root;
  #parts;
  #state;

  /**
   * @param {object} options
   * @param {SessionTap} options.tap  passes the current HubSession's messages
   * @param {HTMLElement} options.container  the conference view; the panel is
   *   appended to it
   * @param {object} options.callbacks
   * @param {(actions: string[]) => void} options.callbacks.onActions  what this
   *   participant may do changed (joined, admitted, floor given or taken);
   *   called before HubSession handles the same `joined`
   * @param {(source: string) => void} options.callbacks.onMutedByHost  a host
   *   asked this client to mute `source`
   * @param {(token: string) => void} options.callbacks.onSessionToken  the hub
   *   accepted an invite and gave the token for later joins
   * @param {(text: string, level: string) => void} options.callbacks.notify
   */
  constructor({ tap, container, callbacks }) {
    this.#tap = tap;
    this.#container = container;
    this.#callbacks = callbacks;
    this.#state = ModerationPanel.#emptyState();
    ModerationPanel.#adoptStyle();
    this.#build();
    tap.onMessage((message) => this.#handle(message));
    onLanguageChange(() => this.#render());
  }

  static #emptyState() {
    return {
      joined: false,
      self: null,
      role: "",
      kind: "joint",
      actions: [],
      waiting: false,
      handRaised: false,
      peers: new Map(), // id -> {id, name, role, hand}
      waitingList: [],
      session: { locked: false, recording: false, spotlight: null, floor: null, sideRoom: null },
      chat: [],
    };
  }

  static #adoptStyle() {
    if (document.querySelector("style[data-moderation]")) {
      return;
    }
    const style = element("style", { "data-moderation": "true" });
    style.textContent = PANEL_STYLE;
    document.head.append(style);
  }

  /** Forgets the previous session, e.g. before a new join. */
  reset() {
    this.#state = ModerationPanel.#emptyState();
    this.#render();
  }

  /** Actions this participant may do now (hub Action values). */
  get actions() {
    return this.#state.actions;
  }

  get waiting() {
    return this.#state.waiting;
  }

  /**
   * Returns whether an error event from HubSession is the expected refusal of
   * media this participant may not publish yet, which needs no notice.
   */
  isExpectedRefusal(detail) {
    if (detail?.code !== "forbidden") {
      return false;
    }
    return this.#state.waiting || /\bpublishing\b/.test(detail.message ?? "");
  }

  may(action) {
    return this.#state.actions.includes(action);
  }

  // ---- hub messages ----

  #handle(message) {
    const state = this.#state;
    switch (message.type) {
      case "joined":
        state.joined = true;
        state.self = message.peer;
        state.role = message.role ?? "";
        state.kind = message.session?.kind ?? "joint";
        state.waiting = Boolean(message.waiting);
        state.peers = new Map();
        for (const peer of message.peers ?? []) {
          state.peers.set(peer.id, { ...peer, hand: false });
        }
        for (const id of message.session?.hands ?? []) {
          const peer = state.peers.get(id);
          if (peer) {
            peer.hand = true;
          }
        }
        state.session = { ...state.session, ...message.session };
        state.chat = [...(message.chat ?? [])];
        state.waitingList = [];
        if (message.token) {
          this.#callbacks.onSessionToken(message.token);
        }
        this.#setActions(message.actions ?? []);
        break;
      case "admitted":
        state.waiting = false;
        for (const peer of message.peers ?? []) {
          state.peers.set(peer.id, { ...peer, hand: false });
        }
        state.session = { ...state.session, ...message.session };
        state.chat = [...(message.chat ?? [])];
        this.#callbacks.notify(tr("notice.admitted"), "info");
        this.#setActions(message.actions ?? []);
        break;
      case "permissions": {
        const hadFloor = state.actions.includes("publish_microphone");
        this.#setActions(message.actions ?? []);
        const hasFloor = state.actions.includes("publish_microphone");
        if (hasFloor !== hadFloor && state.kind !== "joint") {
          this.#callbacks.notify(tr(hasFloor ? "notice.floorGiven" : "notice.floorTaken"), "info");
        }
        break;
      }
      case "peer-joined":
        if (message.peer?.id && message.peer.id !== state.self) {
          state.peers.set(message.peer.id, { ...message.peer, hand: false });
        }
        break;
      case "peer-left":
        state.peers.delete(message.peer);
        break;
      case "waiting-list": {
        const before = new Set(state.waitingList.map((p) => p.id));
        state.waitingList = message.peers ?? [];
        for (const peer of state.waitingList) {
          if (!before.has(peer.id)) {
            this.#callbacks.notify(tr("notice.waiting", { name: peer.name }), "info");
          }
        }
        break;
      }
      case "hand": {
        const peer = state.peers.get(message.peer);
        if (peer) {
          peer.hand = Boolean(message.raised);
          if (peer.hand) {
            this.#callbacks.notify(tr("notice.hand", { name: peer.name }), "info");
          }
        }
        if (message.peer === state.self) {
          state.handRaised = Boolean(message.raised);
        }
        break;
      }
      case "floor":
        state.session.floor = message.peer ?? null;
        break;
      case "spotlight":
        state.session.spotlight = message.peer ?? null;
        break;
      case "side-room":
        state.session.sideRoom = message.peer ? { host: message.host, peer: message.peer } : null;
        break;
      case "locked":
        state.session.locked = Boolean(message.locked);
        this.#callbacks.notify(
          tr(message.locked ? "notice.locked" : "notice.unlocked", { name: message.byName }),
          "info",
        );
        break;
      case "recording":
        state.session.recording = Boolean(message.on);
        this.#callbacks.notify(
          tr(message.on ? "notice.recordingOn" : "notice.recordingOff", { name: message.byName }),
          message.on ? "warning" : "info",
        );
        break;
      case "muted-by-chair":
        this.#callbacks.onMutedByHost(message.source ?? "microphone");
        this.#callbacks.notify(tr("notice.mutedByHost", { name: message.byName }), "warning");
        break;
      case "removed":
        this.#callbacks.notify(tr("notice.removed", { name: message.byName }), "error");
        break;
      case "chat":
        state.chat.push(message);
        if (state.chat.length > MAX_CHAT_SHOWN) {
          state.chat.splice(0, state.chat.length - MAX_CHAT_SHOWN);
        }
        break;
      default:
        return;
    }
    this.#render();
  }

  #setActions(actions) {
    this.#state.actions = actions;
    this.#callbacks.onActions(actions);
  }

  #send(message) {
    this.#tap.send(message);
  }

  // ---- drawing ----

  #build() {
    const root = element("aside", {
      id: "moderation-panel",
      class: "moderation-panel",
      "aria-labelledby": "mod-title",
    });
    const title = element("h3", { id: "mod-title" });
    const status = element("div", { id: "mod-status", class: "mod-status", role: "status" });
    const hostButtons = element("div", { id: "mod-host", class: "mod-buttons" });
    const lock = element("button", { id: "mod-lock", type: "button" });
    const recording = element("button", { id: "mod-recording", type: "button" });
    const muteAll = element("button", { id: "mod-mute-all", type: "button" });
    hostButtons.append(lock, recording, muteAll);
    const hand = element("button", { id: "mod-hand", type: "button", "aria-pressed": "false" });
    const waitingTitle = element("h3", { id: "mod-waiting-title" });
    const waitingList = element("ul", { id: "mod-waiting-list", class: "mod-list" });
    const peersTitle = element("h3", { id: "mod-peers-title" });
    const peers = element("ul", { id: "mod-peers", class: "mod-list" });
    const chatTitle = element("h3", { id: "mod-chat-title" });
    const chatLog = element("ol", { id: "mod-chat-log", class: "mod-chat-log" });
    const chatForm = element("form", { id: "mod-chat-form", class: "mod-chat-form" });
    const chatInput = element("input", {
      id: "mod-chat-input",
      maxlength: String(MAX_CHAT_LENGTH),
      autocomplete: "off",
    });
    const chatSend = element("button", { id: "mod-chat-send", type: "submit" });
    chatForm.append(chatInput, chatSend);
    root.append(
      title,
      status,
      hostButtons,
      hand,
      waitingTitle,
      waitingList,
      peersTitle,
      peers,
      chatTitle,
      chatLog,
      chatForm,
    );

    lock.addEventListener("click", () =>
      this.#send({ type: this.#state.session.locked ? "unlock" : "lock" }),
    );
    recording.addEventListener("click", () =>
      this.#send({ type: "recording", on: !this.#state.session.recording }),
    );
    muteAll.addEventListener("click", () => this.#send({ type: "mute-all" }));
    hand.addEventListener("click", () =>
      this.#send({ type: "raise-hand", raised: !this.#state.handRaised }),
    );
    // One handler for every per-participant button.
    root.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button && button.dataset.peer) {
        this.#send({ type: button.dataset.action, peer: button.dataset.peer });
      }
    });
    chatForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = chatInput.value.trim();
      if (text && this.#tap.send({ type: "chat", text })) {
        chatInput.value = "";
      }
    });

    this.#root = root;
    this.#parts = {
      title,
      status,
      hostButtons,
      lock,
      recording,
      muteAll,
      hand,
      waitingTitle,
      waitingList,
      peersTitle,
      peers,
      chatTitle,
      chatLog,
      chatForm,
      chatInput,
      chatSend,
    };
    this.#container.append(root);
    this.#container.classList.add("has-moderation");
    this.#render();
  }

  #nameOf(id) {
    if (id === this.#state.self) {
      return tr("peer.self");
    }
    return this.#state.peers.get(id)?.name ?? id;
  }

  #render() {
    const state = this.#state;
    const parts = this.#parts;
    const root = this.#root;
    root.hidden = !state.joined;
    root.dataset.role = state.role;
    root.dataset.kind = state.kind;
    root.dataset.waiting = String(state.waiting);
    root.dataset.locked = String(state.session.locked);
    root.dataset.recording = String(state.session.recording);
    const kindName = tr(`kind.${state.kind}`);
    const titleParts = [tr("panel.title"), kindName];
    if (state.role) {
      titleParts.push(tr(`role.${state.role}`));
    }
    parts.title.textContent = titleParts.join(" · ");

    this.#renderStatus();

    parts.lock.hidden = !this.may("lock_room");
    parts.lock.textContent = tr(state.session.locked ? "host.unlock" : "host.lock");
    parts.lock.setAttribute("aria-pressed", String(state.session.locked));
    parts.recording.hidden = !this.may("start_recording");
    const recordingKey = state.session.recording ? "host.recordStop" : "host.recordStart";
    parts.recording.textContent = tr(recordingKey);
    parts.recording.setAttribute("aria-pressed", String(state.session.recording));
    parts.muteAll.hidden = !this.may("mute_others");
    parts.muteAll.textContent = tr("host.muteAll");
    parts.hostButtons.hidden = parts.lock.hidden && parts.recording.hidden && parts.muteAll.hidden;

    parts.hand.hidden = !this.may("raise_hand") && !state.handRaised;
    parts.hand.textContent = tr(state.handRaised ? "hand.lower" : "hand.raise");
    parts.hand.setAttribute("aria-pressed", String(Boolean(state.handRaised)));

    const admits = this.may("admit_party");
    parts.waitingTitle.hidden = !admits;
    parts.waitingList.hidden = !admits;
    parts.waitingTitle.textContent = tr("waiting.title", { count: state.waitingList.length });
    parts.waitingList.replaceChildren(
      ...state.waitingList.map((peer) => {
        const item = element("li", { "data-peer": peer.id });
        item.append(
          element("span", { class: "mod-name" }, `${peer.name} `),
          this.#actionButton("admit", peer.id),
        );
        return item;
      }),
    );

    parts.peersTitle.hidden = state.waiting;
    parts.peers.hidden = state.waiting;
    parts.peersTitle.textContent = tr("peers.title", { count: state.peers.size + 1 });
    parts.peers.replaceChildren(...[...state.peers.values()].map((peer) => this.#peerItem(peer)));

    const chats = this.may("chat");
    parts.chatTitle.hidden = state.waiting;
    parts.chatLog.hidden = state.waiting;
    parts.chatForm.hidden = !chats;
    parts.chatTitle.textContent = tr("chat.title");
    parts.chatInput.placeholder = tr("chat.placeholder");
    parts.chatSend.textContent = tr("chat.send");
    parts.chatLog.replaceChildren(
      ...state.chat.map((entry) => {
        const item = element("li", { "data-peer": entry.peer });
        item.append(
          element("time", { datetime: entry.at }, chatTime(entry.at)),
          element("strong", {}, tr("chat.from", { name: entry.name })),
          document.createTextNode(entry.text),
        );
        return item;
      }),
    );
    parts.chatLog.scrollTop = parts.chatLog.scrollHeight;
  }

  #renderStatus() {
    const state = this.#state;
    const lines = [];
    const line = (className, text) => lines.push(element("p", { class: className }, text));
    if (state.waiting) {
      line("mod-waiting", tr("status.waiting"));
    }
    if (state.session.recording) {
      line("mod-recording", tr("status.recording"));
    }
    if (state.session.locked) {
      line("mod-locked", tr("status.locked"));
    }
    const side = state.session.sideRoom;
    if (side) {
      const involved = side.peer === state.self || side.host === state.self;
      line(
        "mod-side-room",
        involved
          ? tr("status.sideRoomSelf")
          : tr("status.sideRoom", { host: this.#nameOf(side.host), peer: this.#nameOf(side.peer) }),
      );
    }
    if (state.session.floor) {
      line("mod-floor", tr("status.floor", { name: this.#nameOf(state.session.floor) }));
    }
    if (state.session.spotlight) {
      const name = this.#nameOf(state.session.spotlight);
      line("mod-spotlight", tr("status.spotlight", { name }));
    }
    this.#parts.status.replaceChildren(...lines);
  }

  #peerItem(peer) {
    const session = this.#state.session;
    const side = session.sideRoom;
    const item = element("li", {
      "data-peer": peer.id,
      "data-hand": String(Boolean(peer.hand)),
      "data-floor": String(session.floor === peer.id),
      "data-side-room": String(Boolean(side && side.peer === peer.id)),
    });
    const role = peer.role ? ` · ${tr(`role.${peer.role}`)}` : "";
    item.append(element("span", { class: "mod-name" }, `${peer.name}${role}`));
    const buttons = element("div", { class: "mod-buttons" });
    if (this.may("give_floor")) {
      buttons.append(
        this.#actionButton(session.floor === peer.id ? "take-floor" : "give-floor", peer.id),
      );
    }
    if (this.may("roll_call")) {
      buttons.append(this.#actionButton("roll-call", peer.id));
    }
    if (this.may("side_room")) {
      if (side && side.peer === peer.id) {
        buttons.append(this.#actionButton("return", peer.id));
      } else if (!side) {
        buttons.append(this.#actionButton("side-room", peer.id));
      }
    }
    if (this.may("mute_others")) {
      buttons.append(this.#actionButton("mute-peer", peer.id));
    }
    if (this.may("remove_peer")) {
      buttons.append(this.#actionButton("remove", peer.id));
    }
    if (buttons.childElementCount > 0) {
      item.append(buttons);
    }
    return item;
  }

  #actionButton(action, peer) {
    return element(
      "button",
      { type: "button", "data-action": action, "data-peer": peer },
      tr(`action.${action}`),
    );
  }
}
