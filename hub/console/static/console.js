// Live updates for the console: poll the JSON API and fill the page with textContent only
// (never innerHTML: every value from the hub is data, not markup).
"use strict";
(function () {
  const lang = document.body.dataset.lang || "zh";
  const T = {
    zh: { ok: "正常", fail: "异常", none: "无告警", hub: "枢纽", node: "节点", adapter: "适配器", retry: "重试层", dlq: "死信", other: "其他" },
    en: { ok: "OK", fail: "Failing", none: "No alarms", hub: "hub", node: "node", adapter: "adapter", retry: "retry tier", dlq: "dead letters", other: "other" },
  }[lang] || {};
  const dash = (v) => (v === null || v === undefined ? "-" : String(v));

  function row(cells, cls) {
    const tr = document.createElement("tr");
    if (cls) tr.className = cls;
    for (const c of cells) { const td = document.createElement("td"); td.textContent = dash(c); tr.appendChild(td); }
    return tr;
  }
  function fill(root, name, nodes) {
    const target = root.querySelector(`[data-rows="${name}"]`);
    if (target) target.replaceChildren(...nodes);
  }
  function field(root, name, value, cls) {
    const el = root.querySelector(`[data-field="${name}"]`);
    if (!el) return;
    el.textContent = dash(value);
    if (cls !== undefined) el.className = cls;
  }
  function li(text, cls) { const e = document.createElement("li"); e.textContent = text; e.className = cls; return e; }

  const renderers = {
    overview(root, d) {
      const b = d.broker;
      field(root, "at", d.at);
      field(root, "broker_ok", b.ok ? T.ok : T.fail, b.ok ? "ok" : "bad");
      fill(root, "broker_nodes", b.nodes.map((n) => row([n.name, n.running ? "✔" : "✘",
        [n.mem_alarm ? "memory" : "", n.disk_free_alarm ? "disk" : ""].join(" ").trim() || "-"])));
      const alarms = b.alarms.map((a) => li(`${a.node}: ${a.alarm}`, "bad"))
        .concat(b.blocked.map((x) => li(`${x.name} (${x.user}): ${x.state}`, "bad")));
      fill(root, "alarms", alarms.length ? alarms : [li(T.none, "ok")]);
      field(root, "rate_publish", b.rates.publish); field(root, "rate_deliver", b.rates.deliver); field(root, "rate_ack", b.rates.ack);
      field(root, "db_ms", d.database.latency_ms);
      fill(root, "journal", Object.entries(d.journal).map(([k, v]) => row([k, v])));
      fill(root, "connections", b.connections.map((c) => {
        const s = document.createElement("span");
        s.className = "chip " + (c.connected ? "ok" : "off");
        s.textContent = `${c.code} ${lang === "zh" ? c.name_zh : c.name_en}`;
        return s;
      }));
    },
    queues(root, d) {
      field(root, "dead_letters", d.dead_letters); field(root, "retrying", d.retrying);
      fill(root, "queues", d.queues.map((q) => row([q.name, T[q.kind] || q.kind, q.messages, q.unacked, q.consumers,
        q.publish_rate, q.deliver_rate], "kind-" + q.kind)));
    },
  };

  for (const root of document.querySelectorAll("[data-poll]")) {
    const url = root.dataset.poll, render = renderers[root.dataset.render];
    const every = Number(root.dataset.every || 3000);
    if (!render) continue;
    const tick = async () => {
      try {
        const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (r.status === 401) { window.location = "/login?expired=1"; return; }
        if (r.ok) render(root, await r.json());
      } catch (e) { /* the next tick tries again */ }
      setTimeout(tick, every);
    };
    setTimeout(tick, every);
  }

  // The dead-letter count in the menu, on every page.
  const nav = document.getElementById("nav-dlq");
  if (nav) {
    const base = nav.textContent;
    const count = async () => {
      try {
        const r = await fetch("/api/queues", { credentials: "same-origin" });
        if (r.ok) { const d = await r.json(); nav.textContent = d.dead_letters ? `${base} (${d.dead_letters})` : base; }
      } catch (e) { /* ignore */ }
    };
    count(); setInterval(count, 5000);
  }
})();
