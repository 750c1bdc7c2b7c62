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

    "wall.title": "调度指挥大屏",
    "wall.commandRoom": "指挥室",
    "wall.layout": "画面分割",
    "wall.conferenceLink": "视频会商",
    "wall.cameras": "监控资源",
    "wall.filter": "搜索摄像机名称或位置",
    "wall.rooms": "进行中的会商",
    "wall.overdue": "超期任务",
    "wall.defaultPerson": "值班调度员",
    "wall.peerName": "{person}·调度大屏",
    "wall.otherUnits": "其他单位",
    "wall.noCameras": "没有可调阅的摄像机。",
    "wall.camerasFailed": "无法获取摄像机列表：{reason}。3 秒后重试。",
    "wall.orgFailed": "无法获取组织架构：{reason}",
    "wall.joinFailed": "大屏无法连接会商服务：{reason}。请刷新页面重试。",
    "wall.noRooms": "当前没有进行中的会商。",
    "wall.roomsFailed": "无法获取会商列表：{reason}",
    "wall.roomPeers": "{count} 方",
    "wall.roomJoin": "接入画面",
    "wall.roomLeave": "断开",
    "wall.roomJoining": "正在接入…",
    "wall.roomNoVideo": "该会商暂无视频画面。",
    "wall.roomJoinFailed": "无法接入会议室 {room}：{reason}",
    "wall.network.xueliang": "雪亮",
    "wall.network.tianyan": "天眼",
    "wall.network.other": "其他",
    "wall.state.online": "在线",
    "wall.state.offline": "离线",
    "wall.state.starting": "连接中",
    "wall.state.idle": "未调阅",
    "wall.source.camera": "参会方",
    "wall.source.screen": "屏幕",
    "wall.source.camera-feed": "监控",
    "wall.stream.main": "主码流",
    "wall.stream.sub": "子码流",
    "wall.tileState.connecting": "连接中",
    "wall.tileState.playing": "在线",
    "wall.tileState.stalled": "画面中断",
    "wall.tileState.offline": "离线",
    "wall.tileState.error": "打开失败",
    "wall.tileState.ended": "已结束",
    "wall.tile.empty": "点击左侧摄像机或参会方，或拖到此处",
    "wall.tile.connecting": "正在打开画面…",
    "wall.tile.stalled": "画面中断，正在等待恢复…",
    "wall.tile.offline": "摄像机离线，恢复后自动重新连接",
    "wall.tile.error": "无法打开画面，稍后自动重试",
    "wall.tile.ended": "{name} 的画面已结束",
    "wall.tool.enlarge": "放大",
    "wall.tool.shrink": "还原",
    "wall.tool.push": "推送到会商",
    "wall.tool.task": "派发任务",
    "wall.tool.close": "关闭画面",
    "wall.push.title": "推送“{name}”到会商",
    "wall.push.hint": "选择正在进行的会商，推送后所有参会方都能看到该画面。",
    "wall.push.noRooms": "当前没有进行中的会商。",
    "wall.push.send": "推送",
    "wall.push.withdraw": "撤回",
    "wall.push.close": "关闭",
    "wall.push.done": "已将“{name}”推送到 {room}",
    "wall.push.withdrawn": "已从 {room} 撤回“{name}”",
    "wall.push.failed": "推送“{name}”到 {room} 失败：{reason}",
    "wall.taskTitle": "核查：{name}",
    "wall.error.network": "无法连接会商服务（{reason}）",
    "wall.error.noTrack": "会商服务在 {seconds} 秒内未送达画面 {track}",
    "wall.error.notJoined": "大屏尚未连接会商服务",
    "wall.error.roomNotJoined": "尚未接入会议室 {room}",
    "wall.error.unknown": "原因未知",

    "tasks.toggle": "任务",
    "tasks.heading": "调度任务",
    "tasks.new": "派发任务",
    "tasks.submit": "派发",
    "tasks.cancel": "取消",
    "tasks.field.title": "任务标题",
    "tasks.field.unit": "承办单位",
    "tasks.field.deadline": "办结时限",
    "tasks.field.priority": "紧急程度",
    "tasks.field.description": "任务内容（可选）",
    "tasks.titlePlaceholder": "例如：核查思茅区道路积水",
    "tasks.descriptionPlaceholder": "处置要求、联系人等",
    "tasks.preset": "{hours} 小时内",
    "tasks.cameraAttached": "附监控截图：{name}",
    "tasks.snapshotTaking": "正在截取“{name}”的画面…",
    "tasks.snapshotFailed": "附监控：{name}（截图失败：{reason}）",
    "tasks.snapshotLink": "查看截图",
    "tasks.cameraRemove": "取消附加监控画面",
    "tasks.cameraLink": "查看监控画面",
    "tasks.priority.low": "低",
    "tasks.priority.normal": "一般",
    "tasks.priority.high": "高",
    "tasks.priority.urgent": "紧急",
    "tasks.status.assigned": "已派发",
    "tasks.status.accepted": "已签收",
    "tasks.status.in_progress": "处置中",
    "tasks.status.done": "已办结",
    "tasks.status.verified": "已核验",
    "tasks.status.cancelled": "已撤销",
    "tasks.step.accepted": "签收",
    "tasks.step.in_progress": "开始处置",
    "tasks.step.done": "办结",
    "tasks.step.verified": "核验通过",
    "tasks.step.return": "退回",
    "tasks.step.remind": "督办",
    "tasks.step.cancelled": "撤销",
    "tasks.confirm.return": "确认退回",
    "tasks.confirm.remind": "发送督办",
    "tasks.confirm.cancelled": "确认撤销",
    "tasks.notePlaceholder.return": "退回原因（必填）",
    "tasks.notePlaceholder.remind": "督办意见（必填）",
    "tasks.notePlaceholder.cancelled": "撤销原因（可选）",
    "tasks.tab.owed": "本室承办（{count}）",
    "tasks.tab.assigned": "本室派发（{count}）",
    "tasks.noneOwed": "暂无需要本室承办的任务。",
    "tasks.noneAssigned": "本室尚未派发任务。",
    "tasks.noUnit": "会议室 {room} 不属于组织架构中的单位，没有承办任务。",
    "tasks.noneOverdue": "暂无超期任务。",
    "tasks.from": "派发：{room}（{person}）",
    "tasks.to": "承办：{unit}",
    "tasks.deadline": "截止 {time}",
    "tasks.overdueFor": "已超期 {time}",
    "tasks.overdueCount": "{count} 项超期",
    "tasks.overdueNotice": "任务“{title}”已超过办结时限",
    "tasks.reminded": "任务“{title}”收到督办：{note}",
    "tasks.created": "已派发任务“{title}”给 {unit}",
    "tasks.minutes": "{count} 分钟",
    "tasks.hours": "{count} 小时",
    "tasks.days": "{count} 天",
    "tasks.showHistory": "办理记录",
    "tasks.hideHistory": "收起记录",
    "tasks.historyFailed": "无法读取办理记录。",
    "tasks.event.created": "派发",
    "tasks.event.status": "状态变更",
    "tasks.event.statusChange": "{from} → {to}",
    "tasks.event.reminder": "督办",
    "tasks.event.overdue": "超期预警",
    "tasks.unavailable": "任务服务未启用：本会商服务没有提供 /api/tasks。",
    "tasks.networkFailed": "无法连接任务服务（{reason}），稍后自动重试。",
    "tasks.orgFailed": "无法获取组织架构（{reason}），承办单位列表为空。",
    "tasks.error.title": "请填写任务标题。",
    "tasks.error.unit": "请选择承办单位。",
    "tasks.error.deadline": "办结时限必须晚于现在。",
    "tasks.error.create": "派发失败：{reason}。再次点击“派发”会重试同一任务，不会重复创建。",
    "tasks.error.conflict": "该任务已用不同内容提交过，可能已经创建，请先查看“本室派发”列表。",
    "tasks.error.step": "任务“{title}”办理失败：{reason}",
    "tasks.error.history": "无法读取办理记录：{reason}",
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

    "wall.title": "Dispatch wall",
    "wall.commandRoom": "Command room",
    "wall.layout": "Layout",
    "wall.conferenceLink": "Conference",
    "wall.cameras": "Cameras",
    "wall.filter": "Search camera name or location",
    "wall.rooms": "Running sessions",
    "wall.overdue": "Overdue tasks",
    "wall.defaultPerson": "Duty dispatcher",
    "wall.peerName": "{person} · wall",
    "wall.otherUnits": "Other units",
    "wall.noCameras": "No cameras to show.",
    "wall.camerasFailed": "Cannot fetch the camera list: {reason}. Retrying in 3 s.",
    "wall.orgFailed": "Cannot fetch the organisation tree: {reason}",
    "wall.joinFailed": "The wall cannot reach the hub: {reason}. Reload the page to retry.",
    "wall.noRooms": "No session is running.",
    "wall.roomsFailed": "Cannot fetch the running sessions: {reason}",
    "wall.roomPeers": "{count} online",
    "wall.roomJoin": "Show video",
    "wall.roomLeave": "Disconnect",
    "wall.roomJoining": "Connecting…",
    "wall.roomNoVideo": "No video in this session yet.",
    "wall.roomJoinFailed": "Cannot connect to room {room}: {reason}",
    "wall.network.xueliang": "Xueliang",
    "wall.network.tianyan": "Tianyan",
    "wall.network.other": "Other",
    "wall.state.online": "Online",
    "wall.state.offline": "Offline",
    "wall.state.starting": "Connecting",
    "wall.state.idle": "Not viewed",
    "wall.source.camera": "Participant",
    "wall.source.screen": "Screen",
    "wall.source.camera-feed": "Camera",
    "wall.stream.main": "Main stream",
    "wall.stream.sub": "Sub stream",
    "wall.tileState.connecting": "Connecting",
    "wall.tileState.playing": "Live",
    "wall.tileState.stalled": "Interrupted",
    "wall.tileState.offline": "Offline",
    "wall.tileState.error": "Failed",
    "wall.tileState.ended": "Ended",
    "wall.tile.empty": "Click a camera or participant on the left, or drag it here",
    "wall.tile.connecting": "Opening the picture…",
    "wall.tile.stalled": "Picture interrupted; waiting for it to come back…",
    "wall.tile.offline": "Camera offline; the picture returns by itself when the camera is back",
    "wall.tile.error": "Cannot open the picture; retrying shortly",
    "wall.tile.ended": "{name}'s video has ended",
    "wall.tool.enlarge": "Enlarge",
    "wall.tool.shrink": "Restore",
    "wall.tool.push": "Push to session",
    "wall.tool.task": "Assign task",
    "wall.tool.close": "Close the picture",
    "wall.push.title": "Push “{name}” to a session",
    "wall.push.hint": "Pick a running session; every participant there will see this camera.",
    "wall.push.noRooms": "No session is running.",
    "wall.push.send": "Push",
    "wall.push.withdraw": "Withdraw",
    "wall.push.close": "Close",
    "wall.push.done": "Pushed “{name}” to {room}",
    "wall.push.withdrawn": "Withdrew “{name}” from {room}",
    "wall.push.failed": "Pushing “{name}” to {room} failed: {reason}",
    "wall.taskTitle": "Check: {name}",
    "wall.error.network": "cannot reach the hub ({reason})",
    "wall.error.noTrack": "the hub did not deliver track {track} within {seconds} s",
    "wall.error.notJoined": "the wall is not connected to the hub yet",
    "wall.error.roomNotJoined": "not connected to room {room}",
    "wall.error.unknown": "unknown reason",

    "tasks.toggle": "Tasks",
    "tasks.heading": "Dispatch tasks",
    "tasks.new": "Assign task",
    "tasks.submit": "Assign",
    "tasks.cancel": "Cancel",
    "tasks.field.title": "Title",
    "tasks.field.unit": "Assignee unit",
    "tasks.field.deadline": "Deadline",
    "tasks.field.priority": "Priority",
    "tasks.field.description": "Details (optional)",
    "tasks.titlePlaceholder": "e.g. Check the flooded road in Simao",
    "tasks.descriptionPlaceholder": "What to do, whom to contact",
    "tasks.preset": "Within {hours} h",
    "tasks.cameraAttached": "Camera picture attached: {name}",
    "tasks.snapshotTaking": "Taking a picture of “{name}”…",
    "tasks.snapshotFailed": "Camera attached: {name} (no picture: {reason})",
    "tasks.snapshotLink": "Stored picture",
    "tasks.cameraRemove": "Detach the camera",
    "tasks.cameraLink": "Camera picture",
    "tasks.priority.low": "Low",
    "tasks.priority.normal": "Normal",
    "tasks.priority.high": "High",
    "tasks.priority.urgent": "Urgent",
    "tasks.status.assigned": "Assigned",
    "tasks.status.accepted": "Accepted",
    "tasks.status.in_progress": "In progress",
    "tasks.status.done": "Done",
    "tasks.status.verified": "Verified",
    "tasks.status.cancelled": "Cancelled",
    "tasks.step.accepted": "Accept",
    "tasks.step.in_progress": "Start",
    "tasks.step.done": "Mark done",
    "tasks.step.verified": "Verify",
    "tasks.step.return": "Return",
    "tasks.step.remind": "Remind",
    "tasks.step.cancelled": "Cancel task",
    "tasks.confirm.return": "Return task",
    "tasks.confirm.remind": "Send reminder",
    "tasks.confirm.cancelled": "Cancel task",
    "tasks.notePlaceholder.return": "What is still to do (required)",
    "tasks.notePlaceholder.remind": "Reminder text (required)",
    "tasks.notePlaceholder.cancelled": "Reason (optional)",
    "tasks.tab.owed": "Owed by this room ({count})",
    "tasks.tab.assigned": "Assigned by this room ({count})",
    "tasks.noneOwed": "This room owes no tasks.",
    "tasks.noneAssigned": "This room has assigned no tasks.",
    "tasks.noUnit": "Room {room} belongs to no unit of the organisation tree, so it owes no tasks.",
    "tasks.noneOverdue": "No overdue tasks.",
    "tasks.from": "From {room} ({person})",
    "tasks.to": "To {unit}",
    "tasks.deadline": "Due {time}",
    "tasks.overdueFor": "Overdue by {time}",
    "tasks.overdueCount": "{count} overdue",
    "tasks.overdueNotice": "Task “{title}” is past its deadline",
    "tasks.reminded": "Reminder for task “{title}”: {note}",
    "tasks.created": "Assigned “{title}” to {unit}",
    "tasks.minutes": "{count} min",
    "tasks.hours": "{count} h",
    "tasks.days": "{count} days",
    "tasks.showHistory": "History",
    "tasks.hideHistory": "Hide history",
    "tasks.historyFailed": "Cannot read the history.",
    "tasks.event.created": "Assigned",
    "tasks.event.status": "Status change",
    "tasks.event.statusChange": "{from} → {to}",
    "tasks.event.reminder": "Reminder",
    "tasks.event.overdue": "Overdue warning",
    "tasks.unavailable": "Tasks are not enabled: this hub does not serve /api/tasks.",
    "tasks.networkFailed": "Cannot reach the task service ({reason}); retrying shortly.",
    "tasks.orgFailed": "Cannot fetch the organisation tree ({reason}); the unit list is empty.",
    "tasks.error.title": "Enter a title.",
    "tasks.error.unit": "Pick the assignee unit.",
    "tasks.error.deadline": "The deadline must be in the future.",
    "tasks.error.create":
      "Assigning failed: {reason}. Pressing “Assign” again retries the same task without making a second one.",
    "tasks.error.conflict":
      "This task was sent before with other content and may exist already; check “Assigned by this room”.",
    "tasks.error.step": "Task “{title}”: the step failed: {reason}",
    "tasks.error.history": "Cannot read the history: {reason}",
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
