// sluice dashboard: polls v1/overview once a second and redraws; counts
// every drain down every 100 ms from its deadline, on the answering node's
// clock (the browser's clock corrected by the answer's now_ms).
"use strict";
(() => {
  const POLL_MS = 1000;
  const TICK_MS = 100;
  const ANSWER_WITHIN_MS = 3000;
  const STATE_TEXT = {
    active: "active", slow_start: "slow start", unhealthy: "unhealthy",
    maintenance: "maintenance", draining: "draining",
  };

  let offsetMs = 0; // the answering node's clock minus the browser's
  let lastAnswerAt = 0; // browser time of the last answer

  const byId = (id) => document.getElementById(id);
  const serverNow = () => Date.now() + offsetMs;
  const plural = (n, one) => `${n} ${one}${n === 1 ? "" : "s"}`;
  const utc = (ms) => new Date(ms).toISOString().slice(11, 23) + " UTC";

  // An element with attributes (null ones left out, others as strings) and
  // children (text is always set as text, never parsed as HTML).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  const badge = (cls, text, attrs) => el("span", { class: `badge s-${cls}`, ...attrs }, text);

  function table(headers, rows) {
    return el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  function countdownText(ms) {
    if (ms <= 0) return "0.0 s";
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    return `${m} m ${(s - m * 60).toFixed(1).padStart(4, "0")} s`;
  }

  function renderSummary(o) {
    const leader = o.leader == null ? "no leader" : `leader node ${o.leader}`;
    const up = o.members.filter((m) => m.reachable).length;
    byId("summary").replaceChildren(
      el("span", { "data-leader": o.leader ?? "", "data-term": o.term },
        el("b", {}, leader), ` · term ${o.term} · `),
      `${up}/${o.members.length} members answer · revision ${o.revision} · asked node ${o.node}`);
    const n = o.drains.length;
    document.title = n ? `(${plural(n, "drain")}) sluice dashboard` : "sluice dashboard";
  }

  function holdsText(h) {
    const parts = [plural(h.requests, "request"), plural(h.tunnels, "tunnel")];
    if (h.connections != null) parts.unshift(plural(h.connections, "connection"));
    return parts.join(", ");
  }

  function drainNodeRow(d, n) {
    const holding = n.reachable && !n.finished
      && ((n.requests ?? 0) + (n.tunnels ?? 0) + (n.connections ?? 0) > 0);
    let status;
    if (n.finished) status = badge("finished", "finished");
    else if (!n.reachable) status = badge("unreachable", "unreachable");
    else status = badge("holding", "draining");
    const holds = n.reachable && n.requests != null
      ? el("span", { class: holding ? "holds-work" : "" }, holdsText(n))
      : el("span", { class: "quiet" }, n.reachable ? "backend unknown here" : "no answer");
    return el("tr", {
      "data-drain-node": n.node, "data-reachable": n.reachable, "data-finished": n.finished,
      "data-requests": n.requests ?? "", "data-tunnels": n.tunnels ?? "",
      "data-connections": n.connections ?? "",
    }, el("td", {}, `node ${n.node}`), el("td", {}, status), el("td", { "data-holds": "" }, holds));
  }

  function renderDrains(o) {
    const box = byId("drains");
    if (!o.drains.length) {
      box.replaceChildren(el("p", { class: "quiet", "data-no-drains": "" }, "No drain under way."));
      return;
    }
    box.replaceChildren(...o.drains.map((d) => {
      const id = `d${d.id}`;
      const done = d.nodes.filter((n) => n.finished).length;
      const nodes = d.nodes.length
        ? table(["Node", "Status", "Still holds"], d.nodes.map((n) => drainNodeRow(d, n)))
        : el("p", { class: "quiet" }, "Every node closes this listener's connections at the deadline.");
      return el("div", { class: "panel drain", "data-drain": id, "data-kind": d.kind },
        el("div", { class: "drain-head" },
          el("span", { class: "drain-id mono" }, id),
          el("h3", {}, d.subject),
          badge("draining", d.cause.replace(/_/g, " "))),
        el("div", { class: "drain-body" },
          el("div", {},
            el("div", { class: "countdown-row" },
              el("span", {
                class: "countdown", "data-countdown": "", "data-deadline": d.deadline_ms,
                "data-started": d.started_at_ms,
              }, countdownText(d.deadline_ms - serverNow())),
              el("span", { class: "quiet" }, "left")),
            el("div", { class: "bar" }, el("span", { "data-progress": "" })),
            el("div", { class: "drain-meta" }, `deadline ${utc(d.deadline_ms)}`),
            el("div", { class: "drain-meta" }, `started ${utc(d.started_at_ms)}`),
            d.nodes.length
              ? el("div", { class: "drain-meta", "data-finished-nodes": done },
                `finished on ${done} of ${plural(d.nodes.length, "node")}`)
              : null),
          nodes));
    }));
  }

  function renderMembers(o) {
    const rows = o.members.map((m) => el("tr", {
      "data-member": m.node, "data-role": m.role, "data-reachable": m.reachable,
    },
    el("td", {}, `node ${m.node}`),
    el("td", { class: "mono" }, m.addr),
    el("td", {}, badge(m.role, m.role)),
    el("td", {}, m.reachable ? badge("reachable", "answers") : badge("unreachable", "unreachable")),
    el("td", { class: "num" }, m.applied ?? "–"),
    el("td", {}, m.holds ? holdsText(m.holds) : "–"),
    el("td", {}, m.drain != null ? badge("draining", `draining (d${m.drain})`) : "–"),
    el("td", { class: "num" }, m.clock_skew_ms == null ? "–" : `${m.clock_skew_ms} ms`)));
    byId("members").replaceChildren(el("div", { class: "panel" }, table(
      ["Node", "Admin URL", "Role", "Reachable", "Applied", "Holds", "Own drain", "Clock skew"], rows)));
  }

  function backendCell(n) {
    if (!n.reachable) return el("td", { "data-backend-node": n.node, "data-state": "unreachable" },
      badge("unreachable", "unreachable"));
    if (n.state == null) return el("td", { "data-backend-node": n.node, "data-state": "unknown" },
      el("span", { class: "quiet" }, "not applied here yet"));
    const p = n.probe;
    let probe = "not probed";
    if (p && p.passed) probe = `probe ${p.healthy ? "healthy" : "unhealthy"} (${p.detail || "passed"})`;
    else if (p) probe = `probe ${p.healthy ? "healthy, last failed" : "unhealthy"}: ${p.detail || "failed"}`;
    const busy = n.in_flight + n.tunnels > 0;
    return el("td", {
      "data-backend-node": n.node, "data-state": n.state,
      "data-in-flight": n.in_flight, "data-tunnels": n.tunnels,
    },
    badge(n.state, STATE_TEXT[n.state] || n.state),
    el("span", { class: `cell-line ${busy ? "holds-work" : ""}` },
      `${n.in_flight} in flight · ${plural(n.tunnels, "tunnel")}`),
    el("span", { class: `cell-line ${p && !p.passed ? "probe-failed" : ""}`, "data-probe": p ? p.passed : "none" },
      probe));
  }

  function renderGroups(o) {
    const box = byId("groups");
    if (!o.groups.length) {
      box.replaceChildren(el("p", { class: "quiet" }, "No group yet."));
      return;
    }
    const ids = o.members.map((m) => m.node);
    box.replaceChildren(...o.groups.map((g) => {
      const rows = g.backends.map((b) => el("tr", {
        "data-backend": `${g.name} ${b.addr}`, "data-state": b.state,
      },
      el("td", { class: "mono" }, b.addr),
      el("td", { class: "num" }, b.weight),
      el("td", {}, badge(b.state, STATE_TEXT[b.state] || b.state),
        b.drain != null ? el("span", { class: "cell-line mono" }, `d${b.drain}`) : null),
      b.nodes.map(backendCell)));
      const meta = [
        g.drain_enabled ? `drain ${g.drain_timeout_ms / 1000} s` : "no drain",
        g.health_checks ? "health checks on" : "health checks off",
        g.listeners.length ? `listeners ${g.listeners.map((p) => `:${p}`).join(", ")}` : "no listener",
      ].join(" · ");
      return el("div", { class: "panel group", "data-group": g.name },
        el("div", { class: "group-head" }, el("h3", {}, g.name), el("span", { class: "quiet" }, meta)),
        g.backends.length
          ? table(["Backend", "Weight", "Cluster", ...ids.map((id) => `Node ${id}`)], rows)
          : el("p", { class: "quiet" }, "No backend."));
    }));
  }

  function render(o) {
    renderSummary(o);
    renderDrains(o);
    renderMembers(o);
    renderGroups(o);
    tick();
  }

  function setError(text) {
    const box = byId("error");
    box.hidden = !text;
    box.textContent = text ? `No fresh answer from the node (${text}): showing the last one.` : "";
  }

  // Counts every drain down and says how fresh the picture is.
  function tick() {
    const now = serverNow();
    for (const e of document.querySelectorAll("[data-countdown]")) {
      const deadline = Number(e.dataset.deadline);
      const started = Number(e.dataset.started);
      const left = Math.max(0, deadline - now);
      e.dataset.remainingS = (left / 1000).toFixed(1);
      e.dataset.due = String(left === 0);
      e.textContent = left === 0 ? "deadline passed" : countdownText(left);
      const bar = e.closest(".drain")?.querySelector("[data-progress]");
      if (bar && deadline > started) {
        bar.style.width = `${Math.min(100, (100 * (now - started)) / (deadline - started))}%`;
      }
    }
    const live = byId("live");
    if (lastAnswerAt) {
      const age = (Date.now() - lastAnswerAt) / 1000;
      live.dataset.live = age < 3 ? "ok" : "stale";
      byId("live-text").textContent = `updated ${age.toFixed(1)} s ago`;
    }
  }

  async function poll() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ANSWER_WITHIN_MS);
    const sent = Date.now();
    try {
      const r = await fetch("v1/overview", {
        cache: "no-store", signal: abort.signal, headers: { accept: "application/json" },
      });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const o = await r.json();
      const got = Date.now();
      offsetMs = o.now_ms - (sent + got) / 2;
      lastAnswerAt = got;
      render(o);
      setError(null);
    } catch (e) {
      setError(e.name === "AbortError" ? `no answer within ${ANSWER_WITHIN_MS / 1000} s` : String(e.message || e));
    } finally {
      clearTimeout(timer);
      setTimeout(poll, POLL_MS);
    }
  }

  setInterval(tick, TICK_MS);
  poll();
})();
