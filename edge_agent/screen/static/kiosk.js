// The kiosk screen: one page, a section per screen, talking to the agent's local API.
// No libraries and no network: everything it needs is served by the agent on the kiosk.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const page = {
    language: "zh-CN",
    config: null,
    screen: "home",
    desk: "idle",          // the blood-pressure desk's state, from the agent
    ended: null,           // how the desk's session ended, while the cuff screen says so
    identity: null,        // what this page began the measurement with, for "measure again"
    relayAction: "checkin",
    laundry: { machine: null, program: null, card: null, account: null },
    idleTimer: null,
    lastResult: null,
    token: null,           // the agent's page token, fetched at start (see api)
    pin: null,             // the technician's PIN, forgotten when the screen goes home
    heard: [],             // the devices the last scan heard
    pairing: null,         // the pairing's progress, from the agent
  };
  const t = (key, vars) => translate(page.language, key, vars);
  // A card or QR scanner types a whole code in well under a second; keys further apart than this
  // are not one scan, so a stray key earlier does not spoil the next code.
  const SCAN_GAP_MS = 1000;

  // -- talking to the agent --

  // Every request carries the page token the agent handed this page (GET /api/page-token): the
  // agent refuses a request that changes something without it, so a page of another origin in
  // this browser, which cannot read the token, cannot act on the kiosk. A body is always JSON.
  async function api(method, path, body, again) {
    if (page.token === null && path !== "/api/page-token") await fetchToken();
    const headers = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (page.token !== null) headers["x-page-token"] = page.token;
    // The technician's PIN, held by this page only while the technician's screens are open.
    if (page.pin !== null && path.startsWith("/api/admin/")) headers["x-technician-pin"] = page.pin;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw { error: "offline" };
    }
    const data = await response.json().catch(() => ({}));
    // The agent restarted since this page loaded, with a new token: fetch it and try once more.
    if (!response.ok && !again && (data.error === "wrong_page_token" || data.error === "no_page_token")) {
      page.token = null;
      return api(method, path, body, true);
    }
    if (!response.ok) throw data.error ? data : { error: "other" };
    return data;
  }

  async function fetchToken() {
    try {
      page.token = (await api("GET", "/api/page-token")).token;
    } catch (problem) {
      page.token = null;  // the agent is not answering: the request itself will say so
    }
  }

  function errorText(problem) {
    const key = "err." + (problem && problem.error);
    const text = t(key, { seconds: (problem && problem.retry_after_s) || 60 });
    return text === key ? t("err.other") : text;
  }

  function showError(id, problem) {
    const box = $(id);
    box.textContent = errorText(problem);
    box.hidden = false;
  }

  // -- screens, words, language --

  function show(name) {
    page.screen = name;
    for (const section of document.querySelectorAll(".screen")) section.hidden = section.id !== "screen-" + name;
    for (const box of document.querySelectorAll(".error")) box.hidden = true;
    $("home-button").hidden = name === "home";
    armIdleReset();
  }

  function render() {
    document.documentElement.lang = page.language;
    for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
    const other = page.language === "en" ? "zh-CN" : "en";
    $("language").textContent = other === "en" ? "English" : "中文";
    $("language").lang = other;
    if (page.screen === "bp-cuff") renderDesk();
    if (page.screen === "bp-result" && page.lastResult) renderResult(page.lastResult);
    if (page.screen === "relay") loadRelay();
    if (page.screen === "laundry") loadLaundry();
    if (page.screen === "pair") renderPairing();
    renderClock();
  }

  function renderClock() {
    const now = new Date();
    const locale = page.language === "en" ? "en-GB" : "zh-CN";
    $("clock").textContent = now.toLocaleString(locale, { month: "long", day: "numeric", weekday: "long", hour: "2-digit", minute: "2-digit" });
  }

  // Back to the start, in the kiosk's own language, when nobody has touched the screen for a
  // while, from every screen and the start itself (someone may have left it in English): the next
  // person must not find the last one's language, card number or result. A cuff inflating counts
  // as someone there: each pressure it sends re-arms this (listenToDesk), so a cuff that went
  // silent mid-measurement no longer holds the screen.
  function armIdleReset() {
    clearTimeout(page.idleTimer);
    if (!page.config) return;
    page.idleTimer = setTimeout(idleReset, page.config.idle_reset_s * 1000);
  }

  function idleReset() {
    if (page.language !== page.config.language) {
      page.language = page.config.language;
      render();
    }
    goHome();
  }

  // Home (the button, Done, the idle reset): forget whoever was here. The language stays: a
  // person who chose English and taps Home is still here.
  function goHome() {
    // The desk forgets the result shown too: its QR code and receipt are no longer served.
    if (page.desk !== "idle" || page.lastResult) api("POST", "/api/bp/cancel").catch(() => {});
    for (const input of document.querySelectorAll(".entry")) input.value = "";
    page.laundry = { machine: null, program: null, card: null, account: null };
    page.deskRecord = false;
    page.ended = null;
    page.identity = null;
    page.lastResult = null;
    page.pin = null;
    page.heard = [];
    show("home");
  }

  // An on-screen keypad: a kiosk has no keyboard. A card or QR scanner "types" into the focused
  // field like a keyboard and ends with Enter, which presses the screen's OK.
  function buildKeypads() {
    for (const pad of document.querySelectorAll(".keypad")) {
      const input = $(pad.dataset.for);
      for (const key of pad.dataset.keys.split(" ")) {
        const button = document.createElement("button");
        button.className = "key";
        button.textContent = key;
        button.addEventListener("click", () => {
          if (key === "⌫") input.value = input.value.slice(0, -1);
          else if (key === "C") input.value = "";
          else if (input.value.length < input.maxLength) input.value += key;
          input.focus();
        });
        pad.appendChild(button);
      }
    }
    for (const [field, ok] of [["bp-card", "bp-card-ok"], ["relay-digits", "relay-ok"], ["laundry-card", "laundry-card-ok"], ["tech-pin", "tech-pin-ok"]]) {
      $(field).addEventListener("keydown", (event) => { if (event.key === "Enter") $(ok).click(); });
    }
  }

  // A resident's code scanned at the start screen, where no field has focus: its keys come to the
  // page, and its Enter identifies her as the card entry would (the same field, the same OK).
  function listenForScans() {
    let code = "";
    let lastKey = 0;
    document.addEventListener("keydown", (event) => {
      if (page.screen !== "home" || event.target instanceof HTMLInputElement) return;
      if (event.key !== "Enter" && event.key.length !== 1) return;
      // Not for a button that happens to have focus (the language button, tapped last).
      event.preventDefault();
      if (event.timeStamp - lastKey > SCAN_GAP_MS) code = "";
      lastKey = event.timeStamp;
      if (event.key !== "Enter") {
        code += event.key;
        return;
      }
      if (code && page.config && page.config.health) {
        show("bp-identify");
        $("bp-card").value = code;
        $("bp-card-ok").click();
      }
      code = "";
    });
  }

  // -- blood pressure --

  function listenToDesk() {
    const events = new EventSource("/api/bp/events");
    events.addEventListener("state", (event) => {
      const state = JSON.parse(event.data);
      page.desk = state.state;
      page.deskRecord = state.record;  // whose the next reading is, as the desk says: never a stale "yours"
      if (state.state !== "idle") page.ended = null;  // a session again: what ended is past
      if (page.screen === "bp-cuff") renderDesk();
    });
    // How the desk's session ended, from the agent: the cuff screen says so rather than
    // "measuring" for ever (a cuff dropped at 180 mmHg), and what a reading now would be. A
    // result says "finished" itself; "replaced" is this page beginning again.
    events.addEventListener("ended", (event) => {
      const ended = JSON.parse(event.data);
      if (page.screen !== "bp-cuff") return;
      if (ended.reason === "cancelled") {
        goHome();
      } else if (["cuff_lost", "no_result", "expired"].includes(ended.reason)) {
        page.ended = ended;
        renderDesk();
        armIdleReset();
      }
    });
    // A cuff inflating means someone is at it: the screen follows, unless a person is in the
    // middle of something else here (a check-in, a laundry start).
    const atTheCuff = () => ["home", "bp-identify", "bp-cuff", "bp-result"].includes(page.screen);
    events.addEventListener("pressure", (event) => {
      const { pressure } = JSON.parse(event.data);
      if (!atTheCuff()) return;
      if (page.screen !== "bp-cuff") show("bp-cuff");
      page.desk = "measuring";
      renderDesk();
      $("bp-pressure").textContent = pressure;
      $("bp-meter-fill").style.width = Math.min(100, (pressure / 220) * 100) + "%";
      armIdleReset();
    });
    // A serial card or QR reader read a card (or something that is none): one swipe begins her
    // measurement, as a number typed and OK would (the number itself never reaches the page).
    events.addEventListener("scan", (event) => {
      const scan = JSON.parse(event.data);
      if (!page.config || !page.config.health || !["home", "bp-identify", "bp-result"].includes(page.screen)) return;
      armIdleReset();
      if (scan.error) {
        show("bp-identify");
        showError("bp-identify-error", { error: scan.error });
      } else {
        if (page.screen !== "bp-identify") show("bp-identify");
        beginMeasurement({ scan: scan.token });
      }
    });
    // Sent only once the agent's outbox holds the reading.
    events.addEventListener("result", (event) => {
      if (!atTheCuff()) return;
      page.identity = null;  // her measurement is done: "measure again" asks who is next
      page.lastResult = JSON.parse(event.data);
      $("bp-code").hidden = true;
      renderResult(page.lastResult);
      show("bp-result");
    });
  }

  function renderDesk() {
    const ended = page.ended;
    const words = ended ? "bp.ended." + ended.reason : page.desk === "measuring" ? "bp.measuring" : "bp.cuff";
    $("bp-cuff-title").textContent = t(words + ".title");
    $("bp-cuff-next").textContent = t(words + ".next");
    // After an end the desk waits for nobody: a reading now would be on no one's record.
    const whose = ended ? "bp.whose.anonymous" : page.deskRecord ? "bp.whose.record" : "bp.whose.anonymous";
    $("bp-whose").textContent = page.desk === "idle" && !ended ? "" : t(whose);
    $("bp-cancel").hidden = Boolean(ended);
    $("bp-restart").hidden = !ended;
    if (ended) {
      $("bp-pressure").textContent = "—";
      $("bp-meter-fill").style.width = "0%";
    }
  }

  // One button after a session that ended without a result: the same person measures again,
  // on her record if the session was (this page's identity), or without one.
  function measureAgain() {
    const again = page.ended && page.ended.record ? page.identity : { anonymous: true };
    if (again) {
      beginMeasurement(again);
    } else {
      show("bp-identify");  // this page does not know who it was (it was reloaded)
    }
  }

  function renderResult(result) {
    const shown = (value) => (value === null || value === undefined ? "—" : Math.round(value * 10) / 10);
    $("bp-systolic").textContent = shown(result.systolic);
    $("bp-diastolic").textContent = shown(result.diastolic);
    $("bp-pulse").textContent = shown(result.pulse_rate);
    $("bp-unit").textContent = result.unit;
    const category = $("bp-category");
    // The agent's verdict: a category, "unreliable" (no category, "measure again") or "none".
    category.className = "category " + result.meaning;
    category.textContent = t("bp.category." + result.meaning);
    const flags = $("bp-flags");
    flags.replaceChildren();
    for (const text of result.status.map((flag) => t("bp.flag." + flag))) {
      const item = document.createElement("li");
      item.textContent = text;
      flags.appendChild(item);
    }
    // Saved all the same (marked suspect), but never shown as a good reading.
    const unreliable = result.meaning === "unreliable" ? ".unreliable" : "";
    $("bp-saved").textContent = result.saved ? t((result.record ? "bp.saved.record" : "bp.saved.anonymous") + unreliable) : "";
    $("bp-saved").classList.toggle("unreliable", Boolean(unreliable));
    $("bp-show-code").hidden = !result.resident_code;
    $("bp-print").hidden = !page.config.printer;
  }

  // Her code for the doctor, as a QR code the kiosk made, over the screen until tapped: shown
  // only when she asks.
  function showCode() {
    $("bp-code-image").src = "/api/bp/result/" + page.lastResult.seq + "/resident-code.svg";
    $("bp-code").hidden = false;
  }

  // "打印": the agent prints off its event loop and answers within the printer's timeout; the
  // screen stays usable meanwhile, and a printer out of paper is said in words.
  async function printResult() {
    tell(t("bp.printing"));
    $("bp-print").disabled = true;
    try {
      await api("POST", "/api/bp/result/" + page.lastResult.seq + "/print");
      tell(t("bp.printed"));
    } catch (problem) {
      tell(errorText(problem));
    } finally {
      $("bp-print").disabled = false;
    }
  }

  async function beginMeasurement(body) {
    try {
      const state = await api("POST", "/api/bp/begin", body);
      page.identity = body;
      page.ended = null;
      page.desk = state.state;
      page.deskRecord = state.record;
      $("bp-pressure").textContent = "—";
      $("bp-meter-fill").style.width = "0%";
      $("bp-card").value = "";
      show("bp-cuff");
      renderDesk();
    } catch (problem) {
      if (page.screen !== "bp-identify") show("bp-identify");  // "measure again" refused: say why there
      showError("bp-identify-error", problem);
    }
  }

  // -- relay station --

  async function loadRelay() {
    try {
      const station = await api("GET", "/api/relay");
      $("relay-inside").textContent = station.inside;
      const offers = $("relay-offers");
      offers.replaceChildren();
      for (const offer of station.offers) {
        const item = document.createElement("li");
        item.textContent = page.language === "en" ? offer.en : offer.zh;
        offers.appendChild(item);
      }
    } catch (problem) {
      $("relay-inside").textContent = "—";
    }
  }

  function askWho(action) {
    page.relayAction = action;
    $("relay-who-title").textContent = t(action === "checkin" ? "relay.who.in" : "relay.who.out");
    $("relay-digits").value = "";
    show("relay-who");
    $("relay-digits").focus();
  }

  async function relayWho() {
    const typed = $("relay-digits").value.trim();
    // Four digits are typed on the keypad; anything else came from the QR scanner.
    const body = /^[0-9]{1,4}$/.test(typed) ? { phone_last4: typed } : { qr: typed };
    try {
      const answer = await api("POST", "/api/relay/" + page.relayAction, body);
      const since = answer.since ? new Date(answer.since).toLocaleTimeString(page.language === "en" ? "en-GB" : "zh-CN", { hour: "2-digit", minute: "2-digit" }) : "";
      $("relay-done-title").textContent = t("relay." + answer.outcome, { time: since });
      $("relay-done-next").textContent = t("relay." + answer.outcome + ".next", { minutes: answer.stay_minutes ?? 0 });
      $("relay-done-inside").textContent = answer.inside;
      $("relay-digits").value = "";
      show("relay-done");
    } catch (problem) {
      showError("relay-error", problem);
    }
  }

  // -- laundry --

  function machineName(machine) {
    return t(machine.kind === "dryer" ? "laundry.dryer" : "laundry.washer", { unit: machine.unit });
  }

  function localName(text) {
    return page.language === "en" ? text.en : text.zh;
  }

  async function loadLaundry() {
    let machines;
    try {
      machines = await api("GET", "/api/laundry");
    } catch (problem) {
      showError("laundry-error", problem);
      return;
    }
    const grid = $("laundry-machines");
    grid.replaceChildren();
    for (const machine of machines) {
      const card = document.createElement("button");
      card.className = "machine " + machine.shown;
      card.id = "machine-" + machine.unit;
      card.disabled = machine.shown !== "free";
      const name = document.createElement("div");
      name.className = "machine-name";
      name.textContent = machineName(machine);
      const state = document.createElement("div");
      state.className = "machine-state";
      if (machine.shown === "busy") {
        state.textContent = machine.minutes_left === null ? t("laundry.busy.nominutes") : t("laundry.busy", { minutes: machine.minutes_left });
      } else if (machine.shown === "fault") {
        state.textContent = t("laundry.fault") + (machine.error ? "：" + localName(machine.error) : "");
      } else if (machine.shown === "unavailable") {
        state.textContent = t("laundry.unavailable." + machine.reason);
      } else {
        state.textContent = t("laundry." + machine.shown);
      }
      if (machine.points_refunded > 0) {
        state.textContent += " " + t("laundry.refunded", { points: machine.points_refunded });
      }
      card.append(name, state);
      card.addEventListener("click", () => chooseMachine(machine));
      grid.appendChild(card);
    }
  }

  function chooseMachine(machine) {
    page.laundry.machine = machine;
    $("laundry-program-title").textContent = machineName(machine);
    const list = $("laundry-programs");
    list.replaceChildren();
    for (const program of machine.programs) {
      const button = document.createElement("button");
      button.className = "program";
      button.id = "program-" + program.code;
      button.textContent = t("laundry.program", { name: localName(program.name), minutes: program.minutes, points: program.price_points });
      button.addEventListener("click", () => chooseProgram(program));
      list.appendChild(button);
    }
    show("laundry-program");
  }

  function chooseProgram(program) {
    page.laundry.program = program;
    $("laundry-card-next").textContent = t("laundry.card.next", { machine: machineName(page.laundry.machine), program: localName(program.name) });
    $("laundry-card").value = "";
    show("laundry-card");
    $("laundry-card").focus();
  }

  async function laundryCard() {
    const card = $("laundry-card").value;
    try {
      const account = await api("POST", "/api/laundry/account", { card_number: card });
      page.laundry.card = card;
      page.laundry.account = account;
      const { machine, program } = page.laundry;
      $("laundry-confirm-what").textContent = t("laundry.confirm.what", { machine: machineName(machine), program: localName(program.name), minutes: program.minutes });
      $("laundry-confirm-price").textContent = account.free ? t("laundry.confirm.free") : t("laundry.confirm.paid", { points: program.price_points, balance: account.balance });
      show("laundry-confirm");
    } catch (problem) {
      showError("laundry-card-error", problem);
    }
  }

  async function laundryStart() {
    const { machine, program, card } = page.laundry;
    $("laundry-start").disabled = true;
    try {
      const result = await api("POST", "/api/laundry/start", { card_number: card, unit: machine.unit, program: program.code });
      if (result.outcome === "started") {
        const charged = result.points_charged > 0 ? t("laundry.charged", { points: result.points_charged, balance: result.balance }) : t("laundry.charged.free");
        $("laundry-done-title").textContent = t("laundry.started");
        $("laundry-done-next").textContent = t("laundry.started.next", { machine: machineName(machine), minutes: program.minutes, charged });
      } else if (result.outcome === "checking") {
        $("laundry-done-title").textContent = t("laundry.checking");
        $("laundry-done-next").textContent = t("laundry.checking.next");
      } else {
        $("laundry-done-title").textContent = t("laundry.refused");
        // Refused means nothing was charged: say so with the reason, whatever it is.
        $("laundry-done-next").textContent = errorText({ error: result.reason }) + " " + t("laundry.no_points");
      }
    } catch (problem) {
      $("laundry-done-title").textContent = t("laundry.refused");
      $("laundry-done-next").textContent = errorText(problem);
    } finally {
      $("laundry-start").disabled = false;
    }
    page.laundry.card = null;
    $("laundry-card").value = "";
    show("laundry-done");
  }

  // -- help, on every screen: "say it again" and "call staff" --

  // How long the answer to "call staff" stays over the screen.
  const HELP_MESSAGE_MS = 10000;

  // What the current screen says: on the result screen the result, as the agent said it; on the
  // others its instruction, as shown (title, what to do next, an error shown).
  function screenWords() {
    if (page.screen === "bp-result") return { result: true };
    const section = $("screen-" + page.screen);
    const parts = [];
    for (const element of section.querySelectorAll("h1, .next, .big-message, .price, .note, .error")) {
      const text = element.textContent.trim();
      if (text && element.checkVisibility()) parts.push(text);
    }
    // One sentence after another: a full stop where a part has none of its own.
    const stop = page.language === "en" ? ". " : "。";
    const words = parts.map((text) => (/[。！？.!?：:]$/.test(text) ? text + (page.language === "en" ? " " : "") : text + stop));
    return { words: words.join("").trim() || t("help.say") };
  }

  function say(body) {
    if (!page.config || !page.config.speech) return;
    api("POST", "/api/help/say-again", { ...body, language: page.language }).catch(() => {});
  }

  function sayAgain() {
    say(screenWords());
  }

  async function callStaff() {
    let answer;
    try {
      answer = t((await api("POST", "/api/help/call-staff", { screen: page.screen })).outcome === "called" ? "help.called" : "help.already");
    } catch (problem) {
      answer = t("help.failed");
    }
    tell(answer);
    say({ words: answer });
  }

  // An answer over the screen for a while (call staff, print), whatever screen is under it.
  function tell(words) {
    const box = $("help-message");
    box.textContent = words;
    box.hidden = false;
    clearTimeout(page.helpTimer);
    page.helpTimer = setTimeout(() => { box.hidden = true; }, HELP_MESSAGE_MS);
  }

  // -- the technician: pair a new cuff (edge_agent/pairing.py) --

  // Holding the clock this long opens the technician's PIN screen: nothing a resident taps by chance.
  const TECHNICIAN_HOLD_MS = 3000;
  const PAIRING_POLL_MS = 1000;

  function holdClockForTechnician() {
    let timer = null;
    $("clock").addEventListener("pointerdown", () => {
      timer = setTimeout(() => { $("tech-pin").value = ""; show("tech-pin"); $("tech-pin").focus(); }, TECHNICIAN_HOLD_MS);
    });
    for (const end of ["pointerup", "pointerleave", "pointercancel"]) $("clock").addEventListener(end, () => clearTimeout(timer));
  }

  async function technicianPin() {
    page.pin = $("tech-pin").value;
    try {
      page.pairing = await api("GET", "/api/admin/pairing");
    } catch (problem) {
      page.pin = null;
      showError("tech-pin-error", problem);
      return;
    }
    $("tech-pin").value = "";
    page.heard = [];
    show("pair");
    renderPairing();
  }

  async function scanForDevices() {
    $("pair-error").hidden = true;
    $("pair-devices").replaceChildren();
    $("pair-status").textContent = t("pair.scanning");
    $("pair-scan").disabled = true;
    try {
      page.heard = await api("POST", "/api/admin/pairing/scan");
      $("pair-status").textContent = page.heard.length ? "" : t("pair.none");
    } catch (problem) {
      $("pair-status").textContent = "";
      showError("pair-error", problem);
    } finally {
      $("pair-scan").disabled = false;
    }
    renderPairing();
  }

  async function pairDevice(address) {
    $("pair-error").hidden = true;
    try {
      page.pairing = await api("POST", "/api/admin/pairing/pair", { address });
    } catch (problem) {
      showError("pair-error", problem);
    }
    renderPairing();
  }

  async function forgetDevice(address) {
    $("pair-error").hidden = true;
    try {
      page.pairing = await api("DELETE", "/api/admin/pairing/devices/" + encodeURIComponent(address));
    } catch (problem) {
      showError("pair-error", problem);
    }
    renderPairing();
  }

  function deviceButton(text, onClick, enabled) {
    const button = document.createElement("button");
    button.className = "program";
    button.textContent = text;
    button.disabled = !enabled;
    button.addEventListener("click", onClick);
    return button;
  }

  function renderPairing() {
    const progress = page.pairing || { phase: "idle", pair_again: [] };
    const busy = progress.phase === "pairing";
    $("pair-devices").replaceChildren(...page.heard.map((device) => deviceButton(
      device.model
        ? t("pair.device", { name: device.name || device.address, model: device.model }) + (device.configured ? " " + t("pair.configured") : "")
        : t("pair.unknown", { name: device.name || device.address }),
      () => pairDevice(device.address), device.model !== null && !busy)));
    $("pair-again-list").replaceChildren(...progress.pair_again.map((device) => deviceButton(
      t("pair.again", { address: device.address, model: device.model }), () => pairDevice(device.address), !busy)));
    $("pair-again").hidden = progress.pair_again.length === 0;
    const paired = progress.paired || [];
    $("pair-paired-list").replaceChildren(...paired.map((device) => deviceButton(
      t("pair.forget", { address: device.address, model: device.model }), () => forgetDevice(device.address), !busy)));
    $("pair-paired").hidden = paired.length === 0;
    $("pair-scan").disabled = busy;
    const status = {
      idle: "",
      pairing: t("pair.pairing", { address: progress.address }),
      paired: t("pair.paired"),
      failed: t("pair.failure." + progress.failure, { detail: progress.detail || "" }),
    }[progress.phase];
    if (status !== "" || progress.phase !== "idle") $("pair-status").textContent = status;
    $("pair-passkey").hidden = !(busy && progress.passkey);
    $("pair-passkey").textContent = progress.passkey ? t("pair.passkey", { passkey: progress.passkey }) : "";
  }

  async function followPairing() {
    if (page.screen !== "pair" || page.pin === null) return;
    try {
      page.pairing = await api("GET", "/api/admin/pairing");
    } catch (problem) {
      return;  // said at the next action; the screen keeps what it showed
    }
    if (page.pairing.phase === "pairing") armIdleReset();  // someone is at the cuff
    renderPairing();
  }

  // -- wiring --

  function wire() {
    $("language").addEventListener("click", () => { page.language = page.language === "en" ? "zh-CN" : "en"; render(); });
    $("home-button").addEventListener("click", goHome);
    $("say-again").addEventListener("click", sayAgain);
    $("call-staff").addEventListener("click", callStaff);
    $("help-message").addEventListener("click", () => { $("help-message").hidden = true; });  // read: out of the way
    $("go-bp").addEventListener("click", () => { show("bp-identify"); $("bp-card").focus(); });
    $("go-relay").addEventListener("click", () => { show("relay"); loadRelay(); });
    $("go-laundry").addEventListener("click", () => { show("laundry"); loadLaundry(); });
    $("bp-card-ok").addEventListener("click", () => beginMeasurement({ card_number: $("bp-card").value }));
    $("bp-anonymous").addEventListener("click", () => beginMeasurement({ anonymous: true }));
    $("bp-cancel").addEventListener("click", goHome);
    $("bp-restart").addEventListener("click", measureAgain);
    $("bp-done").addEventListener("click", goHome);
    $("bp-again").addEventListener("click", () => { show("bp-identify"); $("bp-card").focus(); });
    $("bp-show-code").addEventListener("click", showCode);
    $("bp-code").addEventListener("click", () => { $("bp-code").hidden = true; });
    $("bp-print").addEventListener("click", printResult);
    $("relay-in").addEventListener("click", () => askWho("checkin"));
    $("relay-out").addEventListener("click", () => askWho("checkout"));
    $("relay-ok").addEventListener("click", relayWho);
    $("relay-back").addEventListener("click", () => { show("relay"); loadRelay(); });
    $("relay-done-ok").addEventListener("click", goHome);
    $("laundry-program-back").addEventListener("click", () => { show("laundry"); loadLaundry(); });
    $("laundry-card-ok").addEventListener("click", laundryCard);
    $("laundry-card-back").addEventListener("click", () => show("laundry-program"));
    $("laundry-start").addEventListener("click", laundryStart);
    $("laundry-confirm-back").addEventListener("click", () => { show("laundry"); loadLaundry(); });
    $("laundry-done-ok").addEventListener("click", goHome);
    $("tech-pin-ok").addEventListener("click", technicianPin);
    $("tech-pin-back").addEventListener("click", goHome);
    $("pair-scan").addEventListener("click", scanForDevices);
    holdClockForTechnician();
    setInterval(followPairing, PAIRING_POLL_MS);
    document.addEventListener("pointerdown", armIdleReset);
    document.addEventListener("keydown", armIdleReset);  // a scanner typing is someone there too
    setInterval(renderClock, 15000);
    // The laundry screen keeps counting down while it is shown.
    setInterval(() => { if (page.screen === "laundry") loadLaundry(); }, 10000);
  }

  async function start() {
    buildKeypads();
    listenForScans();
    wire();
    await fetchToken();
    try {
      page.config = await api("GET", "/api/screen");
    } catch (problem) {
      page.config = { language: "zh-CN", idle_reset_s: 90, health: true, relay: true, laundry: true, records: true };
    }
    page.language = page.config.language;
    for (const button of document.querySelectorAll("[data-service]")) button.hidden = !page.config[button.dataset.service];
    $("bp-card-ok").hidden = !page.config.records;
    $("bp-card").hidden = !page.config.records;
    $("say-again").hidden = !page.config.speech;
    render();
    show("home");
    listenToDesk();
    document.body.dataset.ready = "yes";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
