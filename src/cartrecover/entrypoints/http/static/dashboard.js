// The recovery dashboard: reads the store's JSON API with the admin key kept in this tab's sessionStorage.
// No inline handlers and no other origin (the page's Content-Security-Policy is default-src 'self').
"use strict";

(function () {
  const KEY = "cartrecover.adminKey";
  const PAGE = 50;
  const TREATED = "#2f6fde";
  const HOLDOUT = "#9aa3b5";
  const charts = {};
  const state = { currency: "USD", cartsAfter: null };

  const $ = (id) => document.getElementById(id);
  const figure = (name) => document.querySelector(`[data-figure="${name}"]`);

  // -- the API -----------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body.message || response.statusText);
    return body;
  }

  // -- formatting --------------------------------------------------------------------------------------------

  function money(display, currency = state.currency) {
    if (display === null || display === undefined) return "–";
    const amount = Number(display);
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
    } catch (_unknownCurrency) {
      return `${display} ${currency}`;
    }
  }

  function minorMoney(minor, currency) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch (_unknownCurrency) {
      // keep two decimals
    }
    return money(String(minor / 10 ** digits), currency);
  }

  const count = (n) => (n === null || n === undefined ? "–" : new Intl.NumberFormat().format(n));
  const percent = (x, digits = 1) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(digits)} %`);
  const points = (x) => (x === null || x === undefined ? "–" : `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)} pt`);
  const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "–");
  const major = (display) => (display === null || display === undefined ? null : Number(display));

  function setFigure(name, text, value) {
    const el = figure(name);
    el.textContent = text;
    if (value !== undefined) el.dataset.value = value === null ? "" : String(value);
  }

  function cell(row, text, attrs = {}) {
    const td = document.createElement("td");
    td.textContent = text;
    for (const [k, v] of Object.entries(attrs)) td.dataset[k] = String(v);
    row.appendChild(td);
    return td;
  }

  function fillTable(id, rows, columns) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    for (const item of rows) {
      const tr = document.createElement("tr");
      for (const [text, attrs] of columns(item)) cell(tr, text, attrs);
      body.appendChild(tr);
    }
  }

  // -- charts ------------------------------------------------------------------------------------------------

  function draw(id, config) {
    if (!window.Chart) return;
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    charts[id] = new window.Chart($(id), config);
  }

  function drawTime(daily) {
    // From the first day with carts (a week at least): a young store's chart is not mostly empty days.
    const first = daily.days.findIndex((d) => d.treated.carts + d.holdout.carts > 0);
    const days = daily.days.slice(first < 0 ? 0 : Math.max(0, Math.min(first, daily.days.length - 7)));
    daily = Object.assign({}, daily, { days });
    const labels = days.map((d) => d.date);
    const band = (key) => daily.days.map((d) => (d.cumulative_incremental ? major(d.cumulative_incremental[`${key}_display`]) : null));
    draw("chart-time", {
      data: {
        labels,
        datasets: [
          { type: "bar", label: "Recovered revenue (treated)", data: daily.days.map((d) => major(d.treated.revenue_display)), backgroundColor: "rgba(47,111,222,.35)", yAxisID: "y", order: 3 },
          { type: "bar", label: "Holdout revenue", data: daily.days.map((d) => major(d.holdout.revenue_display)), backgroundColor: "rgba(154,163,181,.55)", yAxisID: "y", order: 4 },
          { type: "line", label: "95 % interval (low)", data: band("revenue_low"), borderWidth: 0, pointRadius: 0, fill: false, yAxisID: "y2", order: 2 },
          { type: "line", label: "95 % interval", data: band("revenue_high"), borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: "rgba(26,143,90,.15)", yAxisID: "y2", order: 2 },
          { type: "line", label: "Incremental revenue, cumulative", data: band("revenue"), borderColor: "#1a8f5a", backgroundColor: "#1a8f5a", borderWidth: 2.5, pointRadius: 0, tension: 0.2, yAxisID: "y2", order: 1 },
        ],
      },
      options: {
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { filter: (item) => item.text !== "95 % interval (low)" } } },
        scales: {
          y: { position: "left", beginAtZero: true, title: { display: true, text: `per day (${state.currency})` } },
          y2: { position: "right", title: { display: true, text: `cumulative incremental (${state.currency})` }, grid: { drawOnChartArea: false } },
        },
      },
    });
  }

  function drawFunnel(daily) {
    const stages = ["carts", "contacted", "clicked", "recovered"];
    const share = (group) => stages.map((s) => (group.carts ? (100 * group[s]) / group.carts : 0));
    const { treated, holdout } = daily.totals;
    draw("chart-funnel", {
      type: "bar",
      data: {
        labels: ["abandoned", "contacted", "clicked", "recovered"],
        datasets: [
          { label: "treated", data: share(treated), backgroundColor: TREATED },
          { label: "holdout", data: share(holdout), backgroundColor: HOLDOUT },
        ],
      },
      options: { scales: { y: { beginAtZero: true, max: 100, ticks: { callback: (v) => `${v} %` } } } },
    });
    fillTable("funnel-table", [["treated", treated], ["holdout", holdout]], ([name, g]) => [
      [name],
      ...stages.map((s) => [count(g[s]), { funnel: `${name}-${s}`, value: g[s] }]),
    ]);
  }

  function drawLift(report) {
    const inc = report.incremental;
    const rate = inc ? inc.recovery_rate : null;
    draw("chart-lift", {
      type: "bar",
      data: {
        labels: ["treated", "holdout", "lift (95 % CI)"],
        datasets: [
          {
            label: "recovery rate",
            data: [
              100 * (report.treated.recovery_rate || 0),
              100 * (report.holdout.recovery_rate || 0),
              rate && rate.low !== null ? [100 * rate.low, 100 * rate.high] : null,
            ],
            backgroundColor: [TREATED, HOLDOUT, "rgba(26,143,90,.6)"],
          },
        ],
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { callback: (v) => `${v} %` } } },
      },
    });
    fillTable("groups-table", [["treated", report.treated], ["holdout", report.holdout]], ([name, g]) => [
      [name],
      [count(g.carts)],
      [count(g.recovered)],
      [percent(g.recovery_rate)],
      [money(g.revenue_display), { value: g.revenue }],
    ]);
  }

  function drawBreakdown(id, rows, costKey) {
    draw(`chart-${id}`, {
      type: "bar",
      data: {
        labels: rows.map((r) => r.key || "–"),
        datasets: [
          { label: "sends", data: rows.map((r) => r.sends), backgroundColor: HOLDOUT },
          { label: "clicks", data: rows.map((r) => r.clicks), backgroundColor: "#6e9be8" },
          { label: "orders", data: rows.map((r) => r.orders), backgroundColor: TREATED },
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
    fillTable(`${id}-table`, rows, (r) => [
      [r.key || "–", { key: r.key }],
      [count(r.sends), { field: "sends", value: r.sends }],
      [count(r.clicks), { field: "clicks", value: r.clicks }],
      [count(r.orders), { field: "orders", value: r.orders }],
      [money(r.revenue_display), { field: "revenue", value: r.revenue }],
      [money(r[`${costKey}_display`]), { field: costKey, value: r[costKey] }],
    ]);
  }

  // -- the overview ------------------------------------------------------------------------------------------

  function showFigures(report) {
    setFigure("abandoned-carts", count(report.abandoned.carts), report.abandoned.carts);
    setFigure("abandoned-value", `worth ${money(report.abandoned.value_display)}`, report.abandoned.value);
    setFigure("recovered", count(report.treated.recovered), report.treated.recovered);
    setFigure("recovered-revenue", `${money(report.treated.revenue_display)} · ${percent(report.treated.recovery_rate)} of treated carts`, report.treated.revenue);
    const inc = report.incremental;
    setFigure("incremental-revenue", inc ? money(inc.revenue_display) : "–", inc ? inc.revenue : null);
    setFigure("incremental-interval", inc ? `95 % CI ${money(inc.revenue_low_display)} to ${money(inc.revenue_high_display)}` : "not enough data yet");
    figure("incremental-interval").dataset.low = inc && inc.revenue_low !== null ? inc.revenue_low : "";
    figure("incremental-interval").dataset.high = inc && inc.revenue_high !== null ? inc.revenue_high : "";
    const rate = inc ? inc.recovery_rate : null;
    setFigure("lift", rate ? points(rate.estimate) : "–", rate ? rate.estimate : null);
    setFigure("lift-interval", rate ? `95 % CI ${points(rate.low)} to ${points(rate.high)}` : "against the holdout");
    setFigure("net", money(report.net_incremental_revenue_display), report.net_incremental_revenue);
    setFigure("costs", `after ${money(report.incentive_cost_display)} discounts, ${money(report.channel_cost_display)} sending${report.roi ? ` · ROI ${Number(report.roi).toFixed(2)}` : ""}`);
    for (const name of ["incremental-revenue", "net"]) {
      const value = Number(figure(name).dataset.value);
      figure(name).classList.toggle("positive", figure(name).dataset.value !== "" && value > 0);
      figure(name).classList.toggle("negative", figure(name).dataset.value !== "" && value < 0);
    }
    $("not-enough").hidden = !report.not_enough_data;
    $("not-enough").textContent = report.not_enough_data ? `Lift: ${report.not_enough_data}.` : "";
  }

  async function loadOverview() {
    const days = Number($("window-days").value);
    const clock = await api("/api/v1/clock");
    const until = new Date(clock.now);
    const since = new Date(until.getTime() - days * 86400000);
    const query = `since=${encodeURIComponent(since.toISOString())}&until=${encodeURIComponent(until.toISOString())}`;
    const [report, daily] = await Promise.all([
      api(`/api/v1/reports/recovery?${query}`),
      api(`/api/v1/reports/recovery/daily?${query}`),
    ]);
    state.currency = report.currency;
    document.body.dataset.since = report.since;
    document.body.dataset.until = report.until;
    $("window-text").textContent = `${when(report.since)} – ${when(report.until)} (${daily.timezone})`;
    showFigures(report);
    drawTime(daily);
    drawFunnel(daily);
    drawLift(report);
    drawBreakdown("channels", report.channels, "channel_cost");
    drawBreakdown("incentives", report.incentives, "incentive_cost");
    await loadCarts(false);
  }

  async function loadCarts(more) {
    const status = $("cart-status").value;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (status) params.set("status", status);
    if (more && state.cartsAfter) params.set("after", state.cartsAfter);
    const page = await api(`/api/v1/carts?${params}`);
    const body = $("carts-table").querySelector("tbody");
    if (!more) body.replaceChildren();
    for (const cart of page.carts) {
      const tr = document.createElement("tr");
      const link = document.createElement("a");
      link.href = `#cart/${encodeURIComponent(cart.id)}`;
      link.textContent = cart.id;
      link.dataset.cart = cart.id;
      cell(tr, "").appendChild(link);
      cell(tr, cart.status);
      cell(tr, cart.group || "–");
      cell(tr, money(cart.value_display, cart.currency));
      cell(tr, when(cart.abandoned_at));
      cell(tr, when(cart.closed_at));
      body.appendChild(tr);
    }
    state.cartsAfter = page.next;
    $("carts-more").hidden = !page.next;
  }

  // -- a cart's timeline -------------------------------------------------------------------------------------

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }

  const stepsText = (steps) => steps.map((s) => `${s.step} (${(s.channels || []).join("/")}) ${when(s.due_at)}`).join(", ");

  function describe(entry) {
    const parts = [];
    for (const [k, v] of Object.entries(entry)) {
      if (k === "at" || k === "kind" || v === null || v === undefined || v === "") continue;
      if (k === "steps" && Array.isArray(v)) {
        parts.push(`steps: ${stepsText(v)}`);
        continue;
      }
      parts.push(`${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    }
    return parts.join(" · ");
  }

  // -- a decision, explained ---------------------------------------------------------------------------------

  const signed = (x, digits) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}`;
  const signedMoney = (x, currency) => `${x >= 0 ? "+" : "−"}${money(String(Math.abs(x)), currency)}`;

  function scoreRow(list, name, label, value) {
    const dt = node("dt", "", label);
    const dd = node("dd");
    dd.dataset.score = name;
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    list.append(dt, dd);
  }

  function valued(v, currency) {
    const span = node("span");
    span.append(
      node("span", "plan", v.plan),
      node("span", "muted", ` · P(order) ${percent(v.p_order)} · uplift ${points(v.uplift)} · `),
      node("span", v.value >= 0 ? "positive" : "negative", `${signedMoney(v.value, currency)} expected vs no contact`),
    );
    return span;
  }

  function scoresOf(scores, entry, currency) {
    const list = node("dl", "scores");
    scoreRow(list, "p-no-contact", "P(order), no contact", percent(scores.p_no_contact));
    if (scores.chosen) scoreRow(list, "chosen", "chosen", valued(scores.chosen, currency));
    scoreRow(list, "runner-up", "runner-up", scores.runner_up ? valued(scores.runner_up, currency) : "none: it was the only candidate");
    scoreRow(list, "candidates", "weighed", `${count(scores.candidates)} candidate plan${scores.candidates === 1 ? "" : "s"}`);
    if (entry.model_version !== null && entry.model_version !== undefined) scoreRow(list, "model", "model", `v${entry.model_version}`);
    return list;
  }

  function contributionsOf(contributions) {
    const box = node("figure", "contributions");
    const list = node("ol");
    const largest = Math.max(...contributions.map(([, v]) => Math.abs(v))) || 1;
    for (const [name, value] of contributions) {
      const li = node("li", value >= 0 ? "up" : "down");
      li.dataset.feature = name;
      li.dataset.value = String(value);
      const track = node("span", "track");
      const bar = node("span", "bar");
      bar.style.width = `${((100 * Math.abs(value)) / largest).toFixed(1)}%`; // CSSOM, which the CSP allows
      track.appendChild(bar);
      li.append(node("span", "feature", name), track, node("span", "value", signed(value, 3)));
      list.appendChild(li);
    }
    const caption = "Top feature contributions (TreeSHAP) to P(order) with no contact, in log-odds: + raises it, − lowers it.";
    box.append(list, node("figcaption", "muted small", caption));
    return box;
  }

  function explainDecision(entry, currency) {
    const box = node("div", "explanation");
    const head = node("p", "chose");
    head.append(node("span", "policy", entry.policy || "–"));
    // A rule-based journey's plan is named after its policy: "rules-v1 chose rules-v1" would say nothing.
    if (entry.plan && entry.plan !== entry.policy) head.append(" chose ", node("span", "plan", entry.plan));
    else if (entry.steps && entry.steps.length) head.append(" chose its configured journey");
    else head.append(" · no contact");
    if (typeof entry.propensity === "number" && entry.propensity < 1) {
      head.append(node("span", "muted", ` · this plan had a ${percent(entry.propensity)} chance`));
    }
    box.appendChild(head);
    if (entry.explored) {
      box.appendChild(node("p", "explored", "Explored: a plan drawn at random among the allowed ones, so the log can learn."));
    }
    if (Array.isArray(entry.reasons) && entry.reasons.length) {
      const reasons = node("ul", "reasons");
      for (const reason of entry.reasons) reasons.appendChild(node("li", "", reason));
      box.appendChild(reasons);
    }
    if (entry.scores && entry.scores.chosen) box.appendChild(scoresOf(entry.scores, entry, currency));
    if (Array.isArray(entry.contributions) && entry.contributions.length) box.appendChild(contributionsOf(entry.contributions));
    if (Array.isArray(entry.steps) && entry.steps.length) box.appendChild(node("p", "steps muted small", `steps: ${stepsText(entry.steps)}`));
    return box;
  }

  async function loadCart(cartId) {
    const cart = await api(`/api/v1/carts/${encodeURIComponent(cartId)}`);
    $("cart-id").textContent = cart.id;
    const facts = $("cart-facts");
    facts.replaceChildren();
    const rows = [
      ["status", cart.status], ["group", cart.group || "–"], ["value", money(cart.value_display, cart.currency)],
      ["shopper", cart.shopper_id || "–"], ["created", when(cart.created_at)], ["abandoned", when(cart.abandoned_at)],
      ["closed", when(cart.closed_at)], ["order", cart.order_id || "–"],
    ];
    for (const [name, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.fact = name;
      facts.append(dt, dd);
    }
    fillTable("cart-lines", cart.lines, (l) => [
      [l.name || l.product_id || l.sku || "–"], [count(l.quantity)], [l.price === undefined ? "–" : minorMoney(l.price, cart.currency)],
    ]);
    fillTable("cart-steps", cart.steps, (s) => [
      [s.step], [s.channel || "–"], [s.status], [when(s.due_at)], [when(s.sent_at)], [s.coupon || "–"], [s.reason || ""],
    ]);
    const list = $("cart-timeline");
    list.replaceChildren();
    for (const entry of cart.timeline) {
      const li = document.createElement("li");
      li.className = String(entry.kind || "");
      const at = document.createElement("span");
      at.className = "when";
      at.textContent = when(entry.at);
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = entry.kind;
      const detail = entry.kind === "decision" ? explainDecision(entry, cart.currency || state.currency) : node("span", "detail", describe(entry));
      li.append(at, kind, detail);
      list.appendChild(li);
    }
  }

  // -- navigation and the key ----------------------------------------------------------------------------------

  function show(view) {
    for (const id of ["sign-in", "overview", "timeline"]) $(id).hidden = id !== view;
    $("controls").hidden = view === "sign-in";
  }

  async function route() {
    if (!sessionStorage.getItem(KEY)) {
      show("sign-in");
      return;
    }
    const match = location.hash.match(/^#cart\/(.+)$/);
    try {
      if (match) {
        show("timeline");
        await loadCart(decodeURIComponent(match[1]));
      } else {
        show("overview");
        await loadOverview();
      }
      document.body.dataset.loaded = match ? "timeline" : "overview";
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        sessionStorage.removeItem(KEY);
        show("sign-in");
        $("key-error").hidden = false;
        $("key-error").textContent = "That key was not accepted: use the store's admin key.";
        return;
      }
      document.body.dataset.loaded = "error";
      $("not-enough").hidden = false;
      $("not-enough").textContent = `Could not load: ${error.message}`;
    }
  }

  function start() {
    if (!window.Chart) {
      $("not-enough").hidden = false;
      $("not-enough").textContent = "The charting library is missing (run `make install`): figures only.";
    }
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("admin-key").value.trim());
      $("admin-key").value = "";
      $("key-error").hidden = true;
      route();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.hash = "";
      route();
    });
    $("window-days").addEventListener("change", () => route());
    $("cart-status").addEventListener("change", () => loadCarts(false));
    $("carts-more").addEventListener("click", () => loadCarts(true));
    window.addEventListener("hashchange", () => route());
    route();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
