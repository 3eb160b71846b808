// The carpoolsla status page: reads /api/v1/live, /api/v1/sla and
// /api/v1/sla/timeseries, draws them, and refreshes every few seconds.
// No framework, no external fetch. Every number shown carries its raw API
// value in data-value, so tests can compare the page with the API.
"use strict";

(function () {
  const body = document.body;
  const refreshMS = Number(body.dataset.refreshMs) || 5000;
  const $ = (sel) => document.querySelector(sel);
  const tid = (id) => document.querySelector('[data-testid="' + id + '"]');
  const SVG = "http://www.w3.org/2000/svg";
  const colors = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // show writes a number: text for people, data-value for tests.
  function show(e, value, text) {
    if (!e) return e;
    e.dataset.value = value === null || value === undefined ? "" : String(value);
    e.textContent = value === null || value === undefined ? "–" : text;
    return e;
  }
  const pct = (v, d) => (v === null || v === undefined ? "–" : v.toFixed(d) + " %");

  function token() {
    const t = document.querySelector('input[name="token"]');
    return t ? t.value.trim() : "";
  }

  async function getJSON(url) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const r = await fetch(url, { headers: headers, cache: "no-store" });
    const j = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(url.split("?")[0] + ": " + (j.error || r.status));
    return j;
  }

  function renderLive(live) {
    show(tid("live-composite"), live.composite_percent, pct(live.composite_percent, 4));
    const p = tid("live-panic");
    p.textContent = live.panic ? "PANIC" : "normal";
    p.dataset.value = String(live.panic);
    p.className = "badge " + (live.panic ? "bad" : "ok");
    tid("live-at").textContent = live.at;
    const cards = tid("regions");
    cards.replaceChildren();
    for (const r of live.regions) {
      const c = el("article", { class: "card breaker-" + r.breaker, "data-testid": "region-" + r.name });
      c.append(el("h3", {}, r.name));
      const dl = el("dl");
      const row = (label, id, value, text) => {
        const d = el("div");
        d.append(el("dt", {}, label), show(el("dd", { "data-testid": "region-" + r.name + "-" + id }), value, text));
        dl.append(d);
      };
      row("health", "health", r.health, r.health.toFixed(1));
      const b = el("div");
      b.append(el("dt", {}, "breaker"), el("dd", { "data-testid": "region-" + r.name + "-breaker", "data-value": r.breaker, class: "state " + r.breaker }, r.breaker));
      dl.append(b);
      row("weight", "weight", r.weight, r.weight.toFixed(1));
      row("composite", "composite", r.composite_percent, pct(r.composite_percent, 4));
      if (r.faults) {
        const fd = el("div");
        fd.append(el("dt", {}, "faults"), el("dd", { "data-testid": "region-" + r.name + "-faults", "data-value": String(r.faults.length),
          class: r.faults.length ? "faulted" : "" }, r.faults.length ? r.faults.join("; ") : "none"));
        dl.append(fd);
      }
      c.append(dl);
      const comps = el("ul", { class: "components" });
      for (const name of Object.keys(r.components || {}).sort()) {
        const li = el("li");
        li.append(el("span", {}, name + " "), show(el("b", { "data-testid": "region-" + r.name + "-component-" + name }), r.components[name], r.components[name].toFixed(0)));
        comps.append(li);
      }
      c.append(comps);
      cards.append(c);
    }
  }

  function renderSLA(rep) {
    tid("sla-window").textContent = rep.window.month || rep.window.from + " – " + rep.window.to;
    show(tid("sla-attainment"), rep.sla.attainment_percent, pct(rep.sla.attainment_percent, 4));
    show(tid("sla-objective"), rep.sla.objective_percent, pct(rep.sla.objective_percent, 2));
    const met = tid("sla-met");
    met.dataset.value = String(rep.sla.met);
    met.textContent = rep.sla.met ? "yes" : "no" + (rep.sla.key_slos_breached.length ? " (veto: " + rep.sla.key_slos_breached.join(", ") + ")" : "");
    met.className = rep.sla.met ? "ok" : "bad";
    show(tid("sla-credit"), rep.sla.credit_percent, rep.sla.credit_percent + " %");
    show(tid("sla-downtime"), rep.downtime_minutes, rep.downtime_minutes + " min");
    show(tid("sla-incidents"), rep.incidents_total, String(rep.incidents_total) + (rep.truncated ? " (truncated)" : ""));
    const dr = rep.dr;
    show(tid("dr-summary"), dr.within_objectives, dr.within_objectives + " / " + dr.drills);

    const tbody = tid("slo-table").querySelector("tbody");
    tbody.replaceChildren();
    for (const svc of rep.services) {
      const tr = el("tr", { class: "service", "data-testid": "service-" + svc.service });
      tr.append(el("th", { scope: "row" }, svc.service), el("td", {}, "weight " + svc.weight), el("td", { class: "wide" }));
      tr.append(show(el("td", { "data-testid": "service-" + svc.service + "-attainment" }), svc.attainment_percent, pct(svc.attainment_percent, 4)));
      tr.append(el("td"), show(el("td", { "data-testid": "service-" + svc.service + "-downtime", class: "wide" }), svc.downtime_minutes, String(svc.downtime_minutes)));
      tr.append(el("td", { class: svc.met ? "ok" : "bad" }, svc.met ? "yes" : "no"));
      tbody.append(tr);
      for (const s of rep.slos.filter((x) => x.service === svc.service)) {
        const id = "slo-" + s.service + "-" + s.slo;
        const r = el("tr", { "data-testid": id });
        const name = el("td", {}, s.slo);
        if (s.key) name.append(el("span", { class: "wide" }, " (key)"), el("span", { class: "narrow", title: "key SLO" }, " *"));
        r.append(el("td"), name);
        r.append(show(el("td", { "data-testid": id + "-objective", class: "wide" }), s.objective_percent, s.objective_percent + " %"));
        r.append(show(el("td", { "data-testid": id + "-attainment" }), s.attainment_percent, pct(s.attainment_percent, 4)));
        r.append(show(el("td", { "data-testid": id + "-budget" }), s.error_budget_used, s.error_budget_used === null ? "–" : (100 * s.error_budget_used).toFixed(1) + " %"));
        r.append(show(el("td", { "data-testid": id + "-bad-minutes", class: "wide" }), s.bad_minutes, String(s.bad_minutes)));
        const m = el("td", { "data-testid": id + "-met", "data-value": String(s.met), class: s.met ? "ok" : "bad" }, s.met ? "yes" : "no");
        r.append(m);
        tbody.append(r);
      }
    }

    const list = tid("incident-list");
    list.replaceChildren();
    if (!rep.incidents.length) list.append(el("li", { class: "none" }, "none"));
    for (const i of rep.incidents) {
      const li = el("li", { "data-testid": "incident" });
      const short = (t) => t.slice(5, 19).replace("T", " ");
      const end = i.end ? short(i.end) : "ongoing";
      li.append(el("b", {}, i.region), document.createTextNode(" " + short(i.start) + " → " + end + " "));
      li.append(show(el("span", { "data-testid": "incident-duration" }), i.duration_seconds, Math.round(i.duration_seconds) + " s"));
      li.append(document.createTextNode(" " + i.reason));
      list.append(li);
    }
  }

  // renderChart draws the series as lines in an SVG whose y axis spans the
  // lowest value (at most 99) to 100 %.
  function renderChart(ts) {
    const box = tid("chart");
    // Drawn at the box's own width, so text keeps its size on a phone.
    const W = Math.max(280, Math.round(box.clientWidth - 16) || 600), H = Math.round(Math.min(260, Math.max(170, W * 0.35)));
    const L = 44, R = 8, T = 8, B = 24;
    let lo = 99;
    for (const s of ts.series) for (const v of s.values) if (v !== null && v < lo) lo = v;
    lo = Math.max(0, Math.floor(lo * 10) / 10);
    const n = ts.times.length;
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + ((100 - v) * (H - T - B)) / (100 - lo || 1);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "attainment over the last " + n + " buckets");
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(SVG, tag);
      for (const k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.append(e);
      return e;
    };
    for (const v of [lo, (lo + 100) / 2, 100]) {
      add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" });
      add("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v.toFixed(1));
    }
    if (n > 0) {
      add("text", { x: L, y: H - 6, class: "axis" }, ts.times[0].slice(11, 16));
      add("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "axis" }, ts.times[n - 1].slice(11, 16));
    }
    const legend = el("ul", { class: "legend" });
    ts.series.forEach((s, k) => {
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
        pen = true;
      });
      const path = add("path", { d: d.trim(), fill: "none", stroke: colors[k % colors.length], "stroke-width": k === 0 ? 2.5 : 1.2, "data-series": s.name });
      path.dataset.points = String(s.values.filter((v) => v !== null).length);
      const li = el("li");
      const sw = el("span", { class: "swatch" });
      sw.style.background = colors[k % colors.length];
      li.append(sw, document.createTextNode(s.name));
      legend.append(li);
    });
    box.replaceChildren(svg, legend);
  }

  function status(msg, bad) {
    const s = tid("status");
    s.textContent = msg;
    s.className = "status" + (bad ? " bad" : "");
  }

  async function refresh() {
    const errors = [];
    const jobs = [
      getJSON("/api/v1/live").then(renderLive),
      getJSON("/api/v1/sla").then(renderSLA),
      getJSON("/api/v1/sla/timeseries?hours=24").then(renderChart),
    ];
    for (const j of jobs) await j.catch((e) => errors.push(e.message));
    if (errors.length) status(errors.join("; "), true);
    else status("updated " + new Date().toISOString().slice(11, 19) + " UTC");
    body.dataset.loaded = "true";
    // For the layout tests: the page must not scroll sideways on a phone.
    body.dataset.viewportWidth = String(window.innerWidth);
    body.dataset.scrollWidth = String(document.documentElement.scrollWidth);
    setTimeout(refresh, refreshMS);
  }

  async function fault(action, form) {
    const out = tid("fault-result");
    const f = form.elements;
    const req = { region: f.region.value, action: action };
    if (action === "inject") {
      req.fault = {
        service: f.service.value,
        latency_ms: Number(f.latency_ms.value) || 0,
        error_rate: Number(f.error_rate.value) || 0,
        down: f.down.checked,
      };
    }
    const headers = { "Content-Type": "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    try {
      const r = await fetch("/api/v1/faults", { method: "POST", headers: headers, body: JSON.stringify(req) });
      const j = await r.json().catch(() => ({}));
      out.textContent = r.ok ? action + " sent to " + req.region : "refused: " + (j.error || r.status) + (j.param ? " [" + j.param + "]" : "");
      out.className = r.ok ? "ok" : "bad";
    } catch (e) {
      out.textContent = "failed: " + e.message;
      out.className = "bad";
    }
  }

  const form = $("#fault-form");
  form.addEventListener("submit", (ev) => { ev.preventDefault(); fault("inject", form); });
  $("#fault-clear").addEventListener("click", () => fault("clear", form));
  refresh();
})();
