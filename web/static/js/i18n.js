// UI strings in Simplified Chinese (the default) and English.
//
// The language comes from ?lang= in the URL, then from localStorage, then
// defaults to Chinese. Elements carry the key of their text in data-i18n (text
// content), data-i18n-placeholder, data-i18n-title or data-i18n-aria-label, and
// translatePage() fills them in.

export const LANGUAGES = ["zh", "en"];
const DEFAULT_LANGUAGE = "zh";
const STORAGE_KEY = "hub.lang";
const HTML_LANG = { zh: "zh-CN", en: "en" };

const STRINGS = {
  zh: {
    "app.title": "综治视频会商",
    "app.languageToggle": "English",
    "app.languageToggleTitle": "切换到英文界面",
    "app.statsLink": "运行统计",

    "join.heading": "加入视频会商",
    "join.room": "会议室编号",
    "join.roomHint": "字母、数字、-、_ 或 .，最多 64 个字符",
    "join.name": "显示名称",
    "join.nameHint": "显示在画面下方，例如：思茅区指挥室",
    "join.submit": "加入会商",
    "join.invalidRoom": "会议室编号无效：只能使用字母、数字、-、_ 或 .，长度 1 到 64 个字符。",
    "join.invalidName": "请填写显示名称（1 到 64 个字符）。",
    "join.failed": "无法加入会议室 {room}：{reason}",

    "header.room": "会议室",
    "header.participants": "{count} 方在线",

    "state.connecting": "连接中",
    "state.connected": "已连接",
    "state.reconnecting": "正在重连",
    "state.failed": "连接失败",
    "state.closed": "已离开",

    "controls.mute": "关闭麦克风",
    "controls.unmute": "打开麦克风",
    "controls.cameraOff": "关闭摄像头",
    "controls.cameraOn": "打开摄像头",
    "controls.share": "共享屏幕",
    "controls.stopShare": "停止共享",
    "controls.leave": "离开会商",
    "controls.rejoin": "重新加入",
    "controls.playAudio": "点击播放声音",

    "tile.you": "我（{name}）",
    "tile.screenOf": "{name} 的屏幕",
    "tile.micMuted": "已静音",
    "tile.cameraOff": "摄像头已关闭",
    "tile.noVideo": "无画面",

    "left.heading": "您已离开会议室 {room}",
    "left.removed": "您已被移出会议室 {room}",
    "left.failed": "与会议室 {room} 的连接已中断",

    "notice.noMedia": "无法使用摄像头或麦克风（{reason}），只能观看和收听。",
    "notice.audioOnly": "无法使用摄像头（{reason}），只发送声音。",
    "notice.videoOnly": "无法使用麦克风（{reason}），只发送画面。",
    "notice.shareFailed": "无法共享屏幕：{reason}",
    "notice.hubError": "会商服务报错：{text}",
    "notice.peerJoined": "{name} 加入了会商",
    "notice.peerLeft": "{name} 离开了会商",
    "notice.peerTimeout": "{name} 的连接已中断",
    "notice.peerRemoved": "{name} 被移出会商",
    "notice.dismiss": "关闭",

    "error.bad-json": "消息格式错误",
    "error.too-large": "消息过大",
    "error.bad-message": "消息内容无效",
    "error.unknown-type": "不支持的消息类型",
    "error.unsupported-version": "客户端版本与会商服务不兼容，请刷新页面",
    "error.not-joined": "尚未加入会议室",
    "error.already-joined": "已经在会议室中",
    "error.bad-sdp": "媒体协商失败",
    "error.out-of-order": "媒体协商顺序错误",
    "error.not-found": "会议室、参会方或媒体流不存在",
    "error.unauthorized": "身份验证失败，请使用有效的令牌重新打开页面",
    "error.forbidden": "您的角色无权执行此操作",
    "error.internal": "会商服务内部错误（编号见详情）",
    "error.socket-failed": "无法连接会商服务",
    "error.request-timed-out": "会商服务未及时响应",
    "error.negotiation-failed": "媒体连接失败",
    "error.reconnect-failed": "多次重连失败",

    "stats.title": "会商运行统计",
    "stats.updated": "更新于 {time}",
    "stats.loading": "正在获取统计数据…",
    "stats.fetchFailed": "无法获取统计数据：{reason}。2 秒后重试。",
    "stats.noRooms": "当前没有进行中的会商。",
    "stats.room": "会议室 {id}",
    "stats.participants": "参会方（{count}）",
    "stats.tracks": "媒体流（{count}）",
    "stats.peerId": "编号",
    "stats.peerName": "名称",
    "stats.trackId": "流编号",
    "stats.publisher": "发布方",
    "stats.kind": "类型",
    "stats.source": "来源",
    "stats.codec": "编码",
    "stats.direction": "方向",
    "stats.in": "上行（接收）",
    "stats.out": "下行 → {name}",
    "stats.packets": "包数",
    "stats.bytes": "字节",
    "stats.bitrate": "码率",
    "stats.drops": "丢弃",
    "stats.keyframeRequests": "关键帧请求",
    "stats.noTracks": "无媒体流",
    "stats.backToConference": "返回会商",

    "kind.audio": "音频",
    "kind.video": "视频",
    "source.camera": "摄像头",
    "source.microphone": "麦克风",
    "source.screen": "屏幕",
    "source.screen-audio": "屏幕声音",
  },
  en: {
    "app.title": "Command Video Conference",
    "app.languageToggle": "中文",
    "app.languageToggleTitle": "Switch to the Chinese interface",
    "app.statsLink": "Statistics",

    "join.heading": "Join a video conference",
    "join.room": "Room ID",
    "join.roomHint": "Letters, digits, -, _ or ., up to 64 characters",
    "join.name": "Display name",
    "join.nameHint": "Shown under your video, e.g. Simao district command room",
    "join.submit": "Join",
    "join.invalidRoom":
      "Invalid room ID: use 1 to 64 letters, digits, '-', '_' or '.'.",
    "join.invalidName": "Enter a display name (1 to 64 characters).",
    "join.failed": "Cannot join room {room}: {reason}",

    "header.room": "Room",
    "header.participants": "{count} online",

    "state.connecting": "Connecting",
    "state.connected": "Connected",
    "state.reconnecting": "Reconnecting",
    "state.failed": "Connection failed",
    "state.closed": "Left",

    "controls.mute": "Mute microphone",
    "controls.unmute": "Unmute microphone",
    "controls.cameraOff": "Turn camera off",
    "controls.cameraOn": "Turn camera on",
    "controls.share": "Share screen",
    "controls.stopShare": "Stop sharing",
    "controls.leave": "Leave",
    "controls.rejoin": "Rejoin",
    "controls.playAudio": "Click to play sound",

    "tile.you": "Me ({name})",
    "tile.screenOf": "{name}'s screen",
    "tile.micMuted": "Muted",
    "tile.cameraOff": "Camera off",
    "tile.noVideo": "No video",

    "left.heading": "You left room {room}",
    "left.removed": "You were removed from room {room}",
    "left.failed": "The connection to room {room} was lost",

    "notice.noMedia":
      "Cannot use the camera or microphone ({reason}); you can watch and listen only.",
    "notice.audioOnly": "Cannot use the camera ({reason}); sending sound only.",
    "notice.videoOnly": "Cannot use the microphone ({reason}); sending video only.",
    "notice.shareFailed": "Cannot share the screen: {reason}",
    "notice.hubError": "The hub reported an error: {text}",
    "notice.peerJoined": "{name} joined",
    "notice.peerLeft": "{name} left",
    "notice.peerTimeout": "{name} lost the connection",
    "notice.peerRemoved": "{name} was removed",
    "notice.dismiss": "Dismiss",

    "error.bad-json": "Malformed message",
    "error.too-large": "Message too large",
    "error.bad-message": "Invalid message",
    "error.unknown-type": "Unsupported message type",
    "error.unsupported-version":
      "This page does not match the hub's version; reload the page",
    "error.not-joined": "Not in a room yet",
    "error.already-joined": "Already in the room",
    "error.bad-sdp": "Media negotiation failed",
    "error.out-of-order": "Media negotiation out of order",
    "error.not-found": "Room, participant or track not found",
    "error.unauthorized": "Authentication failed; reopen the page with a valid token",
    "error.forbidden": "Your role does not allow this action",
    "error.internal": "Internal hub error (see the details for its id)",
    "error.socket-failed": "Cannot reach the hub",
    "error.request-timed-out": "The hub did not reply in time",
    "error.negotiation-failed": "Media connection failed",
    "error.reconnect-failed": "Reconnecting failed repeatedly",

    "stats.title": "Conference statistics",
    "stats.updated": "Updated {time}",
    "stats.loading": "Fetching statistics…",
    "stats.fetchFailed": "Cannot fetch statistics: {reason}. Retrying in 2 s.",
    "stats.noRooms": "No conference is running.",
    "stats.room": "Room {id}",
    "stats.participants": "Participants ({count})",
    "stats.tracks": "Tracks ({count})",
    "stats.peerId": "ID",
    "stats.peerName": "Name",
    "stats.trackId": "Track",
    "stats.publisher": "Publisher",
    "stats.kind": "Kind",
    "stats.source": "Source",
    "stats.codec": "Codec",
    "stats.direction": "Direction",
    "stats.in": "Up (received)",
    "stats.out": "Down → {name}",
    "stats.packets": "Packets",
    "stats.bytes": "Bytes",
    "stats.bitrate": "Bitrate",
    "stats.drops": "Drops",
    "stats.keyframeRequests": "Keyframe requests",
    "stats.noTracks": "No tracks",
    "stats.backToConference": "Back to the conference",

    "kind.audio": "Audio",
    "kind.video": "Video",
    "source.camera": "Camera",
    "source.microphone": "Microphone",
    "source.screen": "Screen",
    "source.screen-audio": "Screen audio",
  },
};

const listeners = new Set();
let language = DEFAULT_LANGUAGE;

function storedLanguage() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage is blocked (private mode, file:// pages), so use the default.
    return null;
  }
}

function storeLanguage(lang) {
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Storage is blocked, so the choice lasts for this page only.
  }
}

/**
 * Picks the language from ?lang= (and remembers it), then localStorage, then
 * the default, and applies it to the document.
 */
export function initLanguage() {
  const requested = new URLSearchParams(location.search).get("lang");
  if (LANGUAGES.includes(requested)) {
    storeLanguage(requested);
    language = requested;
  } else {
    const stored = storedLanguage();
    language = LANGUAGES.includes(stored) ? stored : DEFAULT_LANGUAGE;
  }
  document.documentElement.lang = HTML_LANG[language];
  return language;
}

export function currentLanguage() {
  return language;
}

/** Switches the language, stores it, re-translates the page and calls the listeners. */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) {
    throw new Error(`unsupported language ${JSON.stringify(lang)}: expected one of ${LANGUAGES}`);
  }
  language = lang;
  storeLanguage(lang);
  document.documentElement.lang = HTML_LANG[lang];
  translatePage();
  for (const listener of listeners) {
    listener(lang);
  }
}

export function onLanguageChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * Returns the string for `key` in the current language with {placeholders}
 * filled from `params`. A key missing from a language falls back to Chinese,
 * then to the key itself.
 */
export function t(key, params = {}) {
  const template = STRINGS[language][key] ?? STRINGS[DEFAULT_LANGUAGE][key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : match,
  );
}

export function hasString(key) {
  return Object.hasOwn(STRINGS[DEFAULT_LANGUAGE], key);
}

const ATTRIBUTES = [
  ["data-i18n-placeholder", "placeholder"],
  ["data-i18n-title", "title"],
  ["data-i18n-aria-label", "aria-label"],
];

/** Fills every element under `root` that names a string key in a data-i18n* attribute. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const [dataAttribute, attribute] of ATTRIBUTES) {
    for (const element of root.querySelectorAll(`[${dataAttribute}]`)) {
      element.setAttribute(attribute, t(element.getAttribute(dataAttribute)));
    }
  }
  const title = document.querySelector("title[data-i18n]");
  if (title) {
    document.title = t(title.dataset.i18n);
  }
}

/** Makes `button` switch between Chinese and English. */
export function bindLanguageToggle(button) {
  button.addEventListener("click", () => {
    setLanguage(language === "zh" ? "en" : "zh");
  });
}
