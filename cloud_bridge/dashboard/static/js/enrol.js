// Enrolling a new kiosk (technicians): a one-time code for a site and a kiosk name, shown once,
// for `doorstep enrol --code` on the fresh Pi (docs/deployment.md, "Enrolling a kiosk").

import { call } from "./api.js";
import { el, fill } from "./dom.js";

/** The form (for a role with fleet:manage: the API refuses others). */
export function enrolmentForm(screen) {
  const t = screen.t;
  const site = el("input", { id: "enrol-site", required: true, placeholder: "pudong-lujiazui", size: 18 });
  const kiosk = el("input", { id: "enrol-kiosk", required: true, placeholder: "kiosk-07", size: 12 });
  const answer = el("div", { "data-testid": "enrol-answer", role: "status" });
  const form = el("form", { class: "filters", "data-testid": "enrol", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const made = await call("enrolment-codes", { method: "POST", body: { site: site.value.trim(), kiosk: kiosk.value.trim() } });
      fill(answer, t.t("enrol.code", { site: made.site, kiosk: made.kiosk }), " ",
        el("code", { "data-testid": "enrol-code" }, made.code), " ",
        t.t("enrol.expires", { time: new Date(made.expires_at).toLocaleString() }));
    } catch (error) {
      fill(answer, t.t("error", { reason: error.message }));
    }
  } },
  el("label", {}, t.t("filter.site"), " ", site),
  el("label", {}, t.t("enrol.kiosk"), " ", kiosk),
  el("button", { type: "submit", class: "primary" }, t.t("enrol.submit")));
  return el("div", {}, form, answer);
}
