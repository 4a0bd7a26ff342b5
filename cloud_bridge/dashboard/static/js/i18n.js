// Every label in Chinese (the default) and English. [zh-CN, en].

const LABELS = {
  "app.title": ["Doorstep 运维看板", "Doorstep dashboard"],
  "nav.fleet": ["设备总览", "Fleet"],
  "nav.residents": ["居民血压", "Residents"],
  "lang.other": ["English", "中文"],
  "logout": ["退出登录", "Log out"],
  "role.technician": ["技术员", "technician"],
  "role.station_staff": ["驿站工作人员", "station staff"],
  "role.doctor": ["家庭医生", "family doctor"],
  "role.read_only": ["只读", "read-only"],
  "who": ["{name}（{role}{site}）", "{name} ({role}{site})"],
  "who.site": ["，{site}", ", {site}"],

  "login.title": ["登录运维看板", "Log in to the dashboard"],
  "login.username": ["用户名", "Username"],
  "login.password": ["密码", "Password"],
  "login.submit": ["登录", "Log in"],
  "login.empty": ["请输入用户名和密码", "Enter your username and password"],
  "login.failed": ["用户名或密码错误（连续错 5 次，该用户名锁定 5 分钟）",
    "Wrong username or password (5 wrong tries lock the username for 5 minutes)"],
  "session.expired": ["登录已失效，请重新登录", "Your session has ended: please log in again"],

  "fresh.loading": ["加载中…", "Loading…"],
  "fresh.updated": ["更新于 {time}", "Updated {time}"],
  "fresh.failed": ["连接中断：显示的是 {time} 的数据", "Connection lost: showing data of {time}"],
  "error": ["出错了：{reason}", "Something went wrong: {reason}"],
  "forbidden": ["你的角色不能查看这一页", "Your role may not see this page"],
  "none": ["无", "none"],
  "partial": ["只显示了前 {shown} 条（共 {total} 条）", "Showing the first {shown} of {total}"],

  "status.online": ["在线", "online"],
  "status.offline": ["离线", "offline"],
  "status.unknown": ["未知", "unknown"],
  "reason.connected": ["已连接", "connected"],
  "reason.stopped cleanly": ["正常关闭", "stopped cleanly"],
  "reason.connection lost (Last Will)": ["连接意外中断（遗嘱消息）", "connection lost (Last Will)"],
  "filter.site": ["站点", "Site"],
  "filter.status": ["状态", "Status"],
  "filter.all": ["全部", "All"],
  "filter.alerts": ["有告警", "With alerts"],
  "filter.search": ["查找终端", "Find a kiosk"],
  "filter.problems": ["只看异常", "Problems only"],

  "summary.kiosks": ["终端", "kiosks"],
  "summary.online": ["在线", "online"],
  "summary.offline": ["离线", "offline"],
  "summary.unknown": ["未知", "unknown"],
  "summary.alerts": ["待处理告警", "open alerts"],
  "summary.critical": ["紧急", "critical"],
  "summary.devices": ["设备", "devices"],
  "summary.device_problems": ["设备异常", "device problems"],

  "alerts.title": ["待处理告警", "Open alerts"],
  "alerts.none": ["没有待处理的告警", "No open alerts"],
  "severity.critical": ["紧急", "critical"],
  "severity.warning": ["警告", "warning"],
  "alertstate.open": ["未处理", "open"],
  "alertstate.acknowledged": ["处理中", "acknowledged"],
  "alertstate.resolved": ["已解决", "resolved"],
  "alertkind.kiosk_offline": ["终端离线", "kiosk offline"],
  "alertkind.device_fault": ["设备故障", "device fault"],
  "alertkind.device_offline": ["设备离线", "device offline"],
  "alertkind.low_battery": ["电量低", "low battery"],
  "alertkind.device_bond_lost": ["配对丢失", "pairing lost"],
  "alertkind.device_unreachable": ["设备长时间连不上", "device unreachable"],
  "alertkind.backlog_growing": ["积压增长", "backlog growing"],
  "alertkind.outbox_full": ["缓存已满", "outbox full"],
  "alertkind.outbox_runway_short": ["缓存将满", "outbox filling up"],
  "alertkind.disk_full": ["磁盘已满", "disk full"],
  "alertkind.cannot_save": ["无法保存读数", "cannot save"],
  "alertkind.dangerous_reading": ["危险读数", "dangerous reading"],
  "alertkind.sequence_gap": ["消息缺失", "messages missing"],
  "alertkind.sequence_restarted": ["序号重启", "sequence restarted"],
  "alertkind.messages_refused": ["消息被拒收", "messages refused"],
  "alertkind.payload_key_missing": ["缺少解密密钥", "payload key missing"],
  "alertkind.bridge_taken_over": ["云端连接被顶替", "bridge session taken over"],
  "alertkind.bridge_disconnects": ["云端连接反复断开", "bridge keeps disconnecting"],
  "alertkind.staff_called": ["呼叫工作人员", "staff called"],
  "alert.acknowledge": ["认领", "Acknowledge"],
  "alert.resolve": ["解决", "Resolve"],
  "alert.note": ["备注（可选，留给下一位同事）", "Note (optional, for the next person)"],
  "alert.confirm": ["确定", "Confirm"],
  "alert.cancel": ["取消", "Cancel"],
  "alert.by": ["{who} 已认领", "taken by {who}"],
  "alert.trend": ["查看趋势", "See the trend"],
  "alert.bridge_worker": ["云端服务 {who}", "bridge worker {who}"],
  "alert.failed": ["操作失败：{reason}", "Not done: {reason}"],

  "col.severity": ["级别", "Severity"],
  "col.kind": ["类型", "Kind"],
  "col.where": ["位置", "Where"],
  "col.title": ["内容", "What"],
  "col.since": ["开始", "Since"],
  "col.state": ["状态", "State"],
  "col.actions": ["操作", "Actions"],
  "col.status": ["状态", "Status"],
  "col.site": ["站点", "Site"],
  "col.kiosk": ["终端", "Kiosk"],
  "col.last_seen": ["最后联系", "Last seen"],
  "col.backlog": ["积压", "Backlog"],
  "col.outbox": ["缓存", "Outbox"],
  "col.disk": ["磁盘剩余", "Disk free"],
  "col.cpu": ["CPU 温度", "CPU temp."],
  "col.devices": ["设备", "Devices"],
  "col.alerts": ["告警", "Alerts"],
  "col.config": ["配置", "Config"],
  "config.versions": ["运行 v{running} / 目标 v{desired}", "runs v{running} of v{desired}"],
  "config.in_sync": ["已同步", "in sync"],
  "config.lagging": ["待应用", "lagging"],
  "config.refused": ["被拒绝", "refused"],
  "config.rolled_back": ["已回滚", "rolled back"],
  "col.address": ["地址", "Address"],
  "col.model": ["型号", "Model"],
  "col.firmware": ["固件", "Firmware"],
  "col.link": ["连接", "Link"],
  "col.battery": ["电量", "Battery"],
  "col.machine": ["机器状态", "Machine"],
  "col.error": ["故障", "Fault"],
  "col.last_reading": ["最近测量", "Last reading"],
  "col.time": ["时间", "Time"],
  "col.type": ["类型", "Type"],
  "col.summary": ["内容", "What"],
  "col.command": ["指令", "Command"],
  "col.args": ["参数", "Arguments"],
  "col.issued_by": ["发出人", "By"],
  "col.result": ["结果", "Result"],
  "col.systolic": ["收缩压", "Systolic"],
  "col.diastolic": ["舒张压", "Diastolic"],
  "col.pulse": ["脉搏", "Pulse"],
  "col.category": ["分级", "Category"],
  "col.flags": ["提示", "Notes"],
  "col.readings": ["测量次数", "Readings"],
  "col.pseudonym": ["居民化名", "Pseudonym"],

  "kiosks.title": ["终端", "Kiosks"],
  "enrol.title": ["接入新终端", "Enrol a new kiosk"],
  "enrol.kiosk": ["终端名", "Kiosk"],
  "enrol.submit": ["生成一次性接入码", "Make a one-time code"],
  "enrol.code": ["{site}/{kiosk} 的接入码（只显示这一次）：", "Code for {site}/{kiosk} (shown this once):"],
  "enrol.expires": ["有效至 {time}；在新终端上运行 doorstep enrol --code …", "valid until {time}; on the new kiosk run doorstep enrol --code …"],
  "kiosk.retire": ["从设备列表移除", "Retire from the fleet"],
  "kiosk.retire.confirm": ["再点一次确认移除", "Click again to retire it"],
  "kiosk.retire.what": ["（如测试终端；已上传的数据保留，终端再次上线会重新出现）",
    "(a test kiosk, say; what it sent stays, and it reappears if it sends again)"],
  "bridge.deaf": ["云端服务与消息服务器的连接已断开（自 {since}）：各终端当前状态未知，恢复连接后自动更新",
    "The bridge has lost its connection to the broker (since {since}): every kiosk's status is unknown until it is back"],
  "kiosks.none": ["没有符合条件的终端", "No kiosk matches"],
  "devices.title": ["设备", "Devices"],
  "devices.none": ["没有设备", "No devices"],
  "devices.count": ["{n} 台", "{n}"],
  "devices.issue.offline": ["{n} 台离线", "{n} offline"],
  "devices.issue.fault": ["{n} 台故障", "{n} faulted"],
  "devices.issue.battery": ["{n} 台电量低", "{n} low battery"],
  "devices.issue.bond": ["{n} 台需重新配对", "{n} to pair again"],
  "devices.failing": ["自 {since} 起：{counts}", "since {since}: {counts}"],
  // A device's error codes (contract/device_errors.py); an unknown code shows as it is.
  "deverr.ble_not_found": ["未找到（关机或超出范围）", "not found (off or out of range)"],
  "deverr.ble_out_of_slots": ["蓝牙连接数已满", "no free Bluetooth connection slot"],
  "deverr.ble_aborted": ["连接中断（干扰或距离）", "connection aborted (interference, range)"],
  "deverr.ble_connect_failed": ["连接失败", "connection failed"],
  "deverr.ble_not_bonded": ["未配对", "not paired"],
  "deverr.ble_bond_lost": ["配对丢失", "pairing lost"],
  "deverr.ble_dropped": ["测量中断开", "dropped mid-measurement"],
  "deverr.ble_timeout": ["连接后无测量结果", "no measurement in time"],
  "deverr.ble_gatt_error": ["蓝牙读写失败", "Bluetooth operation failed"],
  "deverr.ble_missing_service": ["缺少应有的服务（型号配置不符？）", "service missing (wrong profile?)"],
  "deverr.ble_decode": ["数据无法解析（固件问题）", "undecodable data (firmware)"],
  "deverr.modbus_timeout": ["总线无应答", "no reply on the line"],
  "deverr.modbus_crc": ["总线数据校验错误", "CRC error on the line"],
  "deverr.modbus_exception": ["控制板返回异常码", "Modbus exception"],
  "deverr.modbus_no_such_unit": ["总线上无此站号", "no such unit on the line"],
  "deverr.modbus_bad_reply": ["应答不符", "reply does not match"],
  "deverr.modbus_decode": ["寄存器数据不符", "registers break the map"],
  "deverr.modbus_frozen": ["控制板死机（心跳停止）", "controller frozen"],
  "deverr.modbus_not_confirmed": ["指令未确认", "command not confirmed"],
  "deverr.modbus_disconnected": ["串口断开", "serial port gone"],
  "backlog.records": ["{n} 条", "{n}"],
  "backlog.oldest": ["最早 {age}", "oldest {age}"],
  "class.health": ["健康", "health"],
  "class.event": ["事件", "events"],
  "class.telemetry": ["遥测", "telemetry"],
  "depth.class": ["{class} {n} 条", "{class} {n}"],
  "col.runway": ["缓存可撑", "Runway"],
  "runway.hours": ["{h} 小时", "{h} h"],
  "runway.unbounded": ["不增长", "not growing"],
  "runway.growth": ["每小时 +{bytes}", "+{bytes} an hour"],

  "kiosk.back": ["← 返回总览", "← Back to the fleet"],
  "kiosk.not_found": ["这个终端还没有发来任何数据", "This kiosk has not sent anything"],
  "kiosk.reason": ["原因", "Reason"],
  "kiosk.first_seen": ["首次联系", "First seen"],
  "kiosk.uptime": ["运行时长", "Up for"],
  "kiosk.clock": ["时钟", "Clock"],
  "kiosk.clock.trusted": ["已校准", "synchronised"],
  "kiosk.clock.untrusted": ["未校准", "not synchronised"],
  "kiosk.clock.ahead": ["时间超前一天以上（{ago}）", "more than a day ahead ({ago})"],
  "kiosk.seq": ["消息序号", "Sequence"],
  "kiosk.seq.value": ["已收到 {last}，已核对到 {checked}", "{last} received, accounted for to {checked}"],
  "kiosk.health": ["运行状况", "Health"],
  "kiosk.events": ["最近事件", "Recent events"],
  "kiosk.telemetry": ["遥测曲线", "Telemetry"],
  "kiosk.alerts": ["这台终端的告警", "This kiosk's alerts"],
  "kiosk.budget": ["{used} / 上限 {budget}", "{used} of {budget}"],
  "kiosk.undelivered": ["未送达（按类）", "Undelivered by class"],
  "kiosk.over_budget": ["超出上限（只剩健康读数）", "over budget (health readings only)"],
  "range": ["时间范围", "Range"],
  "range.6h": ["6 小时", "6 h"],
  "range.24h": ["24 小时", "24 h"],
  "range.7d": ["7 天", "7 days"],
  "range.30d": ["30 天", "30 days"],
  "range.90d": ["90 天", "90 days"],
  "range.1y": ["1 年", "1 year"],
  "range.all": ["全部", "all"],
  "chart.backlog": ["未送达记录（条）", "Undelivered records"],
  "chart.disk": ["磁盘剩余（GB）", "Disk free (GB)"],
  "chart.outbox": ["缓存占用（MB）", "Outbox size (MB)"],
  "chart.systolic": ["收缩压（mmHg）", "Systolic (mmHg)"],
  "chart.diastolic": ["舒张压（mmHg）", "Diastolic (mmHg)"],
  "chart.empty": ["这段时间没有数据", "No data in this range"],
  "series.health": ["健康读数", "health"],
  "series.event": ["事件", "events"],
  "series.telemetry": ["遥测", "telemetry"],
  "series.disk": ["磁盘剩余", "disk free"],
  "series.outbox": ["缓存", "outbox"],
  "band.over_budget": ["超出上限", "over budget"],

  "commands.title": ["远程指令", "Remote commands"],
  "commands.history": ["指令记录", "Command history"],
  "commands.none": ["还没有指令", "No commands yet"],
  "commands.general": ["终端", "Kiosk"],
  "commands.device": ["蓝牙设备", "Bluetooth device"],
  "commands.laundry": ["洗衣房", "Laundry room"],
  "commands.no_devices": ["没有蓝牙设备", "no Bluetooth devices"],
  "commands.no_machines": ["没有洗衣机", "no laundry machines"],
  "commands.confirm": ["再点一次确认：{what}", "Click again to confirm: {what}"],
  "commands.refused_here": ["发送失败：{reason}", "Not sent: {reason}"],
  "commands.unit": ["{n} 号机", "machine {n}"],
  "commands.start_note": ["启动洗衣机要扣居民的积分，只能由居民本人在终端上操作。",
    "Starting a machine charges a resident: only the resident starts one, at the kiosk."],
  "cmd.ping": ["连通测试", "Ping"],
  "cmd.status": ["立即上报状态", "Report status now"],
  "cmd.reload_config": ["重新加载配置", "Reload configuration"],
  "cmd.flush_outbox": ["立即重发缓存", "Re-send the outbox now"],
  "cmd.export_diagnostics": ["导出诊断信息", "Export diagnostics"],
  "cmd.upload_support_bundle": ["上传支持包", "Upload a support bundle"],
  "cmd.reconnect_device": ["重连设备", "Reconnect"],
  "cmd.laundry_stop": ["停止", "Stop"],
  "cmd.laundry_clear_fault": ["清除故障", "Clear fault"],
  "cmd.laundry_start": ["启动洗衣机", "Start a machine"],
  "cmdstatus.pending": ["等待发送", "pending"],
  "cmdstatus.delivered": ["已送达，等待回复", "delivered, waiting"],
  "cmdstatus.succeeded": ["成功", "succeeded"],
  "cmdstatus.failed": ["失败", "failed"],
  "cmdstatus.refused": ["被终端拒绝", "refused"],
  "cmdstatus.timed_out": ["超时", "timed out"],
  "cmd.data": ["返回数据", "Data"],

  "config.title": ["配置", "Configuration"],
  "config.what": ["站点的设置是本站所有终端的默认值，终端自己的设置覆盖它们。保存后终端会在空闲时应用，出问题会自动回滚。",
    "The site's settings are every kiosk's defaults there; the kiosk's own override them. Once saved, the kiosk applies them when idle and rolls back by itself if they fail."],
  "config.site": ["本站所有终端", "Every kiosk of the site"],
  "config.kiosk": ["这台终端", "This kiosk"],
  "config.save": ["保存", "Save"],
  "config.saved": ["已保存：{versions}", "Saved: {versions}"],
  "config.unchanged": ["已保存，终端的配置没有变化", "Saved; no kiosk's configuration changed"],
  "config.refused": ["没有保存，请改正：", "Not saved. Please correct:"],
  "config.not_json": ["不是有效的 JSON：{reason}", "Not valid JSON: {reason}"],
  "bundles.title": ["支持包", "Support bundles"],
  "bundles.request": ["索取支持包", "Request a support bundle"],
  "bundles.what": ["终端的最新日志、自检结果和配置（已去除密码和密钥），最多 96 KiB",
    "the kiosk's newest logs, doctor's checks and configuration (passwords and keys removed), at most 96 KiB"],
  "bundles.none": ["还没有支持包", "No support bundles yet"],
  "bundles.size": ["大小", "Size"],
  "bundles.logs": ["日志", "Logs"],
  "bundles.logs_whole": ["完整", "whole"],
  "bundles.logs_cut": ["较早的 {bytes} 未包含", "the oldest {bytes} left out"],
  "bundles.download": ["下载", "Download"],

  "events.none": ["没有事件", "No events"],
  "event.laundry_machine": ["洗衣机", "machine"],
  "event.laundry_vend": ["洗衣交易", "laundry start"],
  "event.machine": ["{unit} 号机：{state}", "machine {unit}: {state}"],
  "event.remaining": ["剩 {min} 分钟", "{min} min left"],
  "event.vend": ["{unit} 号机 程序 {program}：{outcome}", "machine {unit}, program {program}: {outcome}"],
  "event.points": ["扣 {n} 积分", "{n} points"],
  "event.free": ["免费（80 岁以上）", "free (over 80)"],
  "event.relay_checkin": ["驿站签到", "relay check-in"],
  "event.relay_checkout": ["驿站签退", "relay check-out"],
  "event.staff_called": ["呼叫工作人员", "staff called"],
  "kiosk.speech": ["语音播报", "speech"],
  "kiosk.speech.ok": ["正常：扬声器能播放", "working: the loudspeaker plays"],
  "kiosk.speech.failing": ["没有声音：{error}", "silent: {error}"],
  "event.staff_called.screen": ["在{area}页面按了呼叫", "pressed on a {area} screen"],
  "screenarea.bp": ["量血压", "blood pressure"],
  "screenarea.relay": ["爱心接力站", "relay station"],
  "screenarea.laundry": ["洗衣房", "laundry"],
  "screenarea.home": ["首页", "start"],
  "screenarea.other": ["其他", "another"],
  "event.checkin": ["签到（{method}）· 站内 {inside} 人", "checked in ({method}) · {inside} inside"],
  "event.checkout": ["签退（{method}）· 停留 {stay} · 站内 {inside} 人", "checked out ({method}) · stayed {stay} · {inside} inside"],
  "event.expired": ["超过最长停留时间未签退，已自动结束 · 站内 {inside} 人", "not checked out within the longest stay: ended · {inside} inside"],
  "relaymethod.phone_last4": ["手机尾号", "phone's last 4 digits"],
  "relaymethod.qr": ["二维码", "QR code"],
  "link.online": ["在线", "online"],
  "link.degraded": ["不稳定", "degraded"],
  "link.offline": ["离线", "offline"],
  "link.unknown": ["未知", "unknown"],
  "machine.idle": ["空闲", "idle"],
  "machine.ready": ["就绪", "ready"],
  "machine.running": ["运行中", "running"],
  "machine.paused": ["暂停", "paused"],
  "machine.done": ["已完成", "done"],
  "machine.fault": ["故障", "fault"],
  "machine.service": ["维护中", "service"],
  "machine.unknown": ["未知", "unknown"],
  "vend.started": ["已启动", "started"],
  "vend.refused": ["被拒绝", "refused"],
  "vend.not_started": ["未能启动", "did not start"],
  "vend.cycle_done": ["洗涤完成", "cycle done"],
  "vend.faulted": ["故障", "faulted"],
  "vend.collected": ["已取衣", "collected"],

  "residents.title": ["居民血压趋势", "A resident's blood pressure"],
  "residents.pseudonym": ["居民化名（64 位十六进制）", "Resident's pseudonym (64 hex characters)"],
  "residents.open": ["查看", "Show"],
  "residents.invalid": ["化名应为 64 位十六进制字符（0-9、a-f）", "A pseudonym is 64 hexadecimal characters (0-9, a-f)"],
  "residents.recent": ["最近 90 天测量过血压的居民：危险、上升的在前", "Residents who measured in the last 90 days: dangerous and rising first"],
  "residents.none": ["没有血压读数", "No blood-pressure readings"],
  "residents.privacy": ["这里只有化名：系统不保存居民的真实身份。", "Pseudonyms only: the bridge never holds who a resident is."],
  "residents.summary": ["{n} 次测量，最近一次 {latest}", "{n} readings, the latest {latest}"],
  "residents.readings": ["读数", "Readings"],
  "residents.home": ["我的居民", "My residents"],
  "residents.find": ["居民卡号、二维码或化名", "Card number, QR code or pseudonym"],
  "residents.find.placeholder": ["输入或扫描居民卡、二维码", "Type or scan a card or QR code"],
  "residents.find.none": ["本站点没有这位居民的读数", "No resident of your site has readings under this card or code"],
  "residents.find.invalid": ["不是居民卡号，也不是居民二维码", "Neither a card number nor a resident's QR code"],
  "residents.dangerous": ["危险", "dangerous"],
  "residents.rising": ["上升", "rising"],
  "residents.report": ["打印报告（PDF）", "Print the report (PDF)"],
  "col.trend": ["提示", "Watch"],
  "col.average": ["本周平均 mmHg", "Week's average, mmHg"],
  "averages.title": ["家庭血压平均值", "Home blood-pressure averages"],
  "averages.period": ["{from} 至 {to}（7 天去掉第 1 天）", "{from} to {to} (7 days, the first left out)"],
  "averages.overall": ["全部", "All"],
  "averages.morning": ["早晨", "Mornings"],
  "averages.evening": ["晚上", "Evenings"],
  "averages.before": ["上一周", "The week before"],
  "averages.few": ["读数少于 12 次，平均值仅供参考", "Fewer than 12 readings: read the average with care"],
  "averages.left_out": ["{n} 次不可靠读数未计入", "{n} unreliable readings left out"],
  "averages.none": ["最近一周没有可用读数", "No usable readings in the latest week"],
  "averages.rule": ["按家庭血压监测的做法：连续 7 天早晚测量，去掉第 1 天，取其余读数的平均（2018 年中国高血压防治指南；ESH 2010）；分级用同一指南。",
    "As home monitoring is read: mornings and evenings over 7 days, the first left out, the mean of the rest (2018 Chinese guideline; ESH 2010); categories by the same guideline."],
  "guideline.source": ["分级依据：{name}。“很高”从 {s}/{d} mmHg 起；危险读数告警从 {as}/{ad} mmHg 起。",
    "Bands: {name}. \"Very high\" from {s}/{d} mmHg; the dangerous-reading alert from {as}/{ad} mmHg."],
  "category.normal": ["正常", "normal"],
  "category.high_normal": ["正常高值", "high-normal"],
  "category.high": ["高血压", "high"],
  "category.very_high": ["很高", "very high"],
  "flag.dangerous": ["达到危险读数告警线", "at the dangerous-reading alert line"],
  "flag.suspect": ["读数不可靠：{why}", "not reliable: {why}"],
  // Why the kiosk marked a reading unreliable, for the doctor in words (the limits themselves are
  // drivers/plausibility.py's, and stay there).
  "suspect.systolic_not_above_diastolic": ["收缩压不高于舒张压", "systolic not above diastolic"],
  "suspect.pulse_pressure_too_narrow": ["收缩压与舒张压相差太小", "systolic and diastolic too close"],
  "suspect.systolic_out_of_range": ["收缩压超出可信范围", "systolic outside the plausible range"],
  "suspect.diastolic_out_of_range": ["舒张压超出可信范围", "diastolic outside the plausible range"],
  "suspect.mean_arterial_pressure_outside_pressures": ["平均压不在收缩压与舒张压之间", "mean pressure not between systolic and diastolic"],
  "suspect.pulse_rate_out_of_range": ["脉搏超出可信范围", "pulse outside the plausible range"],
  "suspect.no_value": ["设备没有给出数值", "the device gave no value"],
  "suspect.glucose_out_of_range": ["血糖超出血糖仪的测量范围", "glucose outside the meter's range"],
  "suspect.temperature_out_of_range": ["体温超出可信范围", "temperature outside the plausible range"],
  "suspect.weight_out_of_range": ["体重超出可信范围", "weight outside the plausible range"],
  "suspect.spo2_out_of_range": ["血氧超出可信范围", "SpO2 outside the plausible range"],
  "flag.clock": ["终端时间未校准", "kiosk clock not synchronised"],
  "flag.kpa": ["原始单位 kPa", "measured in kPa"],
  "bpstatus.body_movement": ["测量时身体移动", "moved during the measurement"],
  "bpstatus.cuff_too_loose": ["袖带过松", "cuff too loose"],
  "bpstatus.irregular_pulse": ["脉搏不齐", "irregular pulse"],
  "bpstatus.pulse_rate_exceeds_upper_limit": ["脉率高于上限", "pulse above the upper limit"],
  "bpstatus.pulse_rate_below_lower_limit": ["脉率低于下限", "pulse below the lower limit"],
  "bpstatus.improper_measurement_position": ["测量姿势不当", "improper measurement position"],

  "ago.now": ["刚刚", "just now"],
  "ago.s": ["{n} 秒前", "{n} s ago"],
  "ago.m": ["{n} 分钟前", "{n} min ago"],
  "ago.h": ["{n} 小时前", "{n} h ago"],
  "ago.d": ["{n} 天前", "{n} d ago"],
  "dur.s": ["{n} 秒", "{n} s"],
  "dur.m": ["{n} 分钟", "{n} min"],
  "dur.h": ["{n} 小时", "{n} h"],
  "dur.d": ["{n} 天", "{n} d"],
};

export const DEFAULT_LANGUAGE = "zh-CN";

export class Translator {
  constructor(lang) {
    this.lang = lang === "en" ? "en" : DEFAULT_LANGUAGE;
    this.index = this.lang === "en" ? 1 : 0;
  }

  has(key) {
    return key in LABELS;
  }

  /** The label for `key`, with {name} placeholders filled from `vars`. */
  t(key, vars = {}) {
    const entry = LABELS[key];
    const text = entry ? entry[this.index] : `⟦${key}⟧`; // a missing label shows, and tests look for it
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /** A label for a value the API sends (a status, a kind), or the value itself if unknown. */
  of(prefix, value) {
    if (value === null || value === undefined) return "—";
    return this.has(`${prefix}.${value}`) ? this.t(`${prefix}.${value}`) : String(value);
  }

  /** A {zh, en} text (a laundry map's error text): this language first. */
  pick(texts) {
    if (!texts) return "";
    return this.lang === "en" ? texts.en || texts.zh || "" : texts.zh || texts.en || "";
  }

  time(date) {
    return date ? date.toLocaleTimeString(this.lang, { hour12: false }) : "—";
  }

  dateTime(date) {
    if (!date) return "—";
    return date.toLocaleString(this.lang, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
    });
  }

  duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, seconds);
    if (s < 60) return this.t("dur.s", { n: Math.round(s) });
    if (s < 90 * 60) return this.t("dur.m", { n: Math.round(s / 60) });
    if (s < 36 * 3600) return this.t("dur.h", { n: Math.round(s / 3600) });
    return this.t("dur.d", { n: Math.round(s / 86400) });
  }

  ago(date, now = new Date()) {
    if (!date) return "—";
    const s = (now - date) / 1000;
    if (s < 5) return this.t("ago.now");
    if (s < 60) return this.t("ago.s", { n: Math.round(s) });
    if (s < 90 * 60) return this.t("ago.m", { n: Math.round(s / 60) });
    if (s < 36 * 3600) return this.t("ago.h", { n: Math.round(s / 3600) });
    return this.t("ago.d", { n: Math.round(s / 86400) });
  }

  bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
  }
}
