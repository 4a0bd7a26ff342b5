// Software updates: each rollout's progress (kiosks per state, failures with the kiosks' own
// reasons) with pause, resume and abort for technicians, and the releases uploaded. Starting a
// rollout and uploading a bundle are the API's (docs/updates.md, "Uploading and rolling out").

import { allPages, call } from "./api.js";
import { el, fill, parseTime } from "./dom.js";
import { kioskHref, section, table } from "./widgets.js";

// The order a rollout's kiosks move through (cloud_bridge/rollouts.py), for its counts.
const STATES = ["waiting", "asked", "queued", "deferred", "downloading", "verifying", "installing", "switching",
  "checking", "healthy", "rolled_back", "refused", "failed", "skipped", "cancelled"];
const FAILED = new Set(["rolled_back", "refused", "failed"]);
const FINISHED = new Set(["healthy", "skipped", "cancelled", ...FAILED]);

export function rolloutsScreen(screen, view) {
  const t = screen.t;
  const rolloutList = el("div", { "data-testid": "rollouts" });
  const releaseList = el("div", { "data-testid": "releases" });
  fill(view, section(t.t("rollouts.title"), rolloutList), section(t.t("releases.title"), releaseList));
  const manages = screen.may("fleet:manage");
  const confirming = new Set(); // rollouts whose abort waits for a second click

  async function act(rollout, action) {
    try {
      await call(`rollouts/${rollout.id}/${action}`, { method: "POST" });
    } finally {
      confirming.delete(rollout.id);
      await refresh();
    }
  }

  function buttons(rollout) {
    if (!manages || !["active", "paused"].includes(rollout.status)) return null;
    const button = (action, label, extra = {}) => el("button", {
      type: "button", class: "small", "data-action": action, onclick: () => act(rollout, action), ...extra }, label);
    if (confirming.has(rollout.id)) {
      return [el("span", { class: "warning" }, t.t("rollout.abort.confirm")), " ",
        button("abort", t.t("rollout.abort"), { class: "small primary", "data-action": "confirm-abort" }), " ",
        el("button", { type: "button", class: "small", onclick: () => { confirming.delete(rollout.id); refresh(); } },
          t.t("alert.cancel"))];
    }
    return [rollout.status === "active" ? button("pause", t.t("rollout.pause")) : button("resume", t.t("rollout.resume")), " ",
      el("button", { type: "button", class: "small", "data-action": "abort",
        onclick: () => { confirming.add(rollout.id); refresh(); } }, t.t("rollout.abort"))];
  }

  function targetText(rollout) {
    const target = rollout.target || {};
    if (rollout.target_kind === "site") return t.t("rollout.target.site", { site: target.site });
    if (rollout.target_kind === "kiosks") return t.t("rollout.target.kiosks", { n: (target.kiosks || []).length });
    return t.t("rollout.target.percent", { percent: target.percent });
  }

  function progress(rollout) {
    const counts = rollout.counts || {};
    const done = Object.entries(counts).filter(([state]) => FINISHED.has(state)).reduce((sum, [, n]) => sum + n, 0);
    return el("div", {},
      el("strong", {}, t.t("rollout.done", { done, total: rollout.total })),
      el("div", { class: "sub" }, STATES.filter((state) => counts[state])
        .map((state) => el("span", { class: `count${FAILED.has(state) ? " bad" : ""}`, "data-state": state },
          `${t.of("update", state)} ${counts[state]} `))));
  }

  function failures(rollout) {
    if (!rollout.failures.length) return "0";
    return el("ul", { class: "failures" }, rollout.failures.map((f) => el("li", { "data-failed": `${f.site}/${f.kiosk}` },
      el("a", { href: kioskHref(f.site, f.kiosk) }, `${f.site}/${f.kiosk}`), " ", t.of("update", f.state),
      f.reason ? el("span", { class: "sub" }, `: ${f.reason}`) : null)));
  }

  function render(rollouts, releases) {
    const headers = ["#", "col.version", "col.target", "col.state", "col.progress", "col.failures", "col.issued_by",
      "col.actions"].map((key) => ({ label: key === "#" ? "#" : t.t(key) }));
    fill(rolloutList, table(headers, rollouts.map((r) => el("tr", {
      class: `rollout rollout-${r.status}`, "data-rollout": r.id, "data-status": r.status },
    el("td", {}, String(r.id)),
    el("td", {}, el("strong", {}, r.version)),
    el("td", {}, targetText(r), el("div", { class: "sub" }, `${t.t("rollout.phase." + r.phase)} · ${r.canaries}`)),
    el("td", { "data-testid": "rollout-status" }, t.t(`rollout.status.${r.status}`),
      r.paused_reason ? el("div", { class: "sub" }, r.paused_reason) : null),
    el("td", { "data-testid": "rollout-progress" }, progress(r)),
    el("td", { "data-testid": "rollout-failures" }, failures(r)),
    el("td", { title: r.created_at }, r.created_by, el("div", { class: "sub" }, t.dateTime(parseTime(r.created_at)))),
    el("td", {}, buttons(r)))), { empty: t.t("rollouts.none") }));
    const releaseHeaders = ["col.version", "col.size", "col.uploaded", "col.issued_by"].map((key) => ({ label: t.t(key) }));
    fill(releaseList, table(releaseHeaders, releases.map((r) => el("tr", { "data-release": r.version },
      el("td", {}, el("strong", {}, r.version), r.notes ? el("div", { class: "sub" }, r.notes) : null),
      el("td", { title: r.sha256 }, t.bytes(r.size_bytes)),
      el("td", {}, t.dateTime(parseTime(r.uploaded_at))),
      el("td", {}, r.uploaded_by))), { empty: t.t("releases.none") }));
  }

  async function refresh() {
    const [listed, releases] = await Promise.all([allPages("rollouts", {}, 1), call("releases")]);
    // The list counts each rollout's kiosks; a rollout's own page adds its failures' reasons.
    const rollouts = await Promise.all(listed.items.map((r) => (r.counts && Object.keys(r.counts).some((s) => FAILED.has(s))
      ? call(`rollouts/${r.id}`) : Promise.resolve({ ...r, failures: [] }))));
    if (screen.stopped) return;
    render(rollouts, releases);
  }

  screen.every(refresh);
}
