// trinity node dashboard: polls /api/status and draws plots as SVG.
// Everything the peers send (IDs, reasons) is inserted as text, never HTML.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;
const PAD = { l: 56, r: 14, t: 14, b: 30 };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmtNum(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toFixed(digits === undefined ? 4 : digits);
}

function fmtBytes(b) {
  if (b === null || b === undefined || !isFinite(b)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i === 0 ? b.toFixed(0) : b.toFixed(1)) + " " + u[i];
}

function short(id) {
  if (!id) return "";
  return id.length > 16 ? id.slice(0, 6) + "…" + id.slice(-6) : id;
}

// niceTicks returns about n round numbers spanning [lo, hi].
function niceTicks(lo, hi, n) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / Math.max(n, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function tickLabel(v, fmt) {
  if (fmt === "bytes") return fmtBytes(v);
  if (Math.abs(v) >= 1000) return (v / 1000).toFixed(v % 1000 === 0 ? 0 : 1) + "k";
  return Number(v.toPrecision(4)).toString();
}

// linePlot draws series [{name, cls, pts: [[x, y|null]...], bars}] into the
// container: one <path class="series"> per series, with data-points set to
// the number of points drawn.
function linePlot(box, series, opt) {
  opt = opt || {};
  // Drawn at the box's own width, so that text keeps its size on any card.
  const W = Math.max(260, Math.round(box.clientWidth || 640)), H = opt.height || 210;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  let xs = [], ys = [];
  for (const s of series) for (const [x, y] of s.pts) if (y !== null && isFinite(y)) { xs.push(x); ys.push(y); }
  if (ys.length === 0) {
    root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, opt.empty || "no data yet"));
    box.replaceChildren(root);
    return;
  }
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  let y0 = opt.zero ? Math.min(0, ...ys) : Math.min(...ys), y1 = Math.max(...ys);
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const padY = (y1 - y0) * 0.08;
  if (!opt.zero || y0 < 0) y0 -= padY;
  y1 += padY;
  const X = x => PAD.l + (x - x0) / (x1 - x0) * (W - PAD.l - PAD.r);
  const Y = y => H - PAD.b - (y - y0) / (y1 - y0) * (H - PAD.t - PAD.b);

  for (const t of niceTicks(y0, y1, H > 180 ? 5 : 3)) {
    root.appendChild(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: Y(t), y2: Y(t), class: "grid" }));
    root.appendChild(svg("text", { x: PAD.l - 6, y: Y(t) + 4, "text-anchor": "end" }, tickLabel(t, opt.yfmt)));
  }
  for (const t of niceTicks(x0, x1, 6)) {
    if (t !== Math.round(t)) continue;
    root.appendChild(svg("text", { x: X(t), y: H - PAD.b + 16, "text-anchor": "middle" }, t));
  }
  root.appendChild(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: "axis" }));
  root.appendChild(svg("text", { x: W - PAD.r, y: H - 2, "text-anchor": "end" }, "round"));

  series.forEach((s, i) => {
    const cls = s.cls || "c" + i;
    const pts = s.pts.filter(p => p[1] !== null && isFinite(p[1]));
    if (s.bars) {
      const bw = Math.max(1, (W - PAD.l - PAD.r) / Math.max(s.pts.length, 1) / series.length * 0.8);
      for (const [x, y] of pts) {
        root.appendChild(svg("rect", { class: "bar " + cls, x: X(x) - bw * (series.length / 2 - i), y: Y(Math.max(y, 0)),
          width: bw, height: Math.abs(Y(0) - Y(y)) }));
      }
    }
    // Rounds without a value (no manifest, not scored) are stepped over:
    // the line joins the rounds that have one.
    let d = "";
    pts.forEach(([x, y], j) => { d += (j ? "L" : "M") + X(x).toFixed(1) + " " + Y(y).toFixed(1); });
    const path = svg("path", { d: d, class: "series " + cls, "data-points": pts.length, "data-name": s.name });
    if (s.bars) path.setAttribute("stroke-opacity", "0");
    root.appendChild(path);
    if (pts.length === 1 && !s.bars) {
      root.appendChild(svg("circle", { cx: X(pts[0][0]), cy: Y(pts[0][1]), r: 3.5, class: cls }));
    }
  });
  const lg = svg("g", { class: "legend" });
  let lx = PAD.l + 8;
  series.forEach((s, i) => {
    if (!s.pts.some(p => p[1] !== null && isFinite(p[1]))) return;
    lg.appendChild(svg("rect", { x: lx, y: PAD.t, width: 12, height: 4, class: s.cls || "c" + i }));
    const t = svg("text", { x: lx + 16, y: PAD.t + 6 }, s.name);
    lg.appendChild(t);
    lx += 28 + 6.5 * s.name.length;
  });
  root.appendChild(lg);
  box.replaceChildren(root);
}

// mid is the round at the middle of a (possibly downsampled) point.
function mid(p) { return p.round + Math.max((p.rounds || 1) - 1, 0) / 2; }

function set(id, text) { const e = $(id); if (e) e.textContent = text; }

function renderHeader(s) {
  set("peer", short(s.peer));
  $("peer").title = s.peer;
  set("network", short(s.network));
  $("network").title = s.network;
  document.body.dataset.role = s.role || "";
  const role = $("role");
  role.textContent = s.role || "?";
  role.className = "badge " + (s.role || "");
  document.title = `trinity ${s.role || "node"} ${short(s.peer)} · round ${s.round}`;
  set("t-round", s.round);
  set("t-phase", s.busy ? `${s.phase} · ${s.busy}` : (s.phase || ""));
  set("t-hash", s.state_hash ? s.state_hash.slice(0, 12) : "–");
  $("t-hash").title = s.state_hash || "";
  const behind = s.rounds_behind || 0;
  set("t-behind", s.role === "bootstrap" ? "holds no state" :
    `next round ${s.state_round} · ` + (s.catching_up ? "catching up" : behind > 0 ? `${behind} behind head` : "at head"));
  set("t-valloss", fmtNum(s.val_loss));
  set("t-valloss-s", s.role === "trainer" ? "validators measure it" : "global model");
  set("t-trainloss", fmtNum(s.last_loss));
  $("t-trainloss").parentElement.classList.toggle("hidden", s.role !== "trainer");
  set("t-contrib", s.role === "bootstrap" ? "–" : s.contributors);
  set("t-peers", s.peers);
  set("t-peers-s", `${s.peers_seen || 0} seen`);
  const h = s.history || [];
  const last = h.length > 1 ? h[h.length - 2] : h[h.length - 1];
  set("t-bytes-in", last ? "↓ " + fmtBytes(last.bytes_in / (last.rounds || 1)) : "–");
  set("t-bytes-out", last ? `in · ↑ ${fmtBytes(last.bytes_out / (last.rounds || 1))} out` : "payload in");
}

function renderPlots(s) {
  const h = s.history || [];
  const pick = f => h.map(p => [mid(p), p[f] === undefined ? null : p[f]]);
  linePlot($("loss-plot"), [
    { name: "validation loss", pts: pick("val_loss") },
    { name: "training loss (own)", pts: pick("train_loss"), cls: "c2" },
  ], { empty: s.role === "bootstrap" ? "a bootstrap node holds no model" : "no round applied yet" });

  if (s.role === "validator") {
    $("score-title").firstChild.textContent = "Manifests ";
    $("score-title").lastChild.textContent = "contributions per round";
    linePlot($("score-plot"), [{ name: "contributions", pts: pick("contributors"), bars: true, cls: "c3" }], { zero: true });
  } else {
    linePlot($("score-plot"), [{ name: "score", pts: pick("score"), cls: "c1" }],
      { zero: true, empty: s.role === "trainer" ? "not scored yet" : "trainers only" });
  }
  const per = f => h.map(p => [mid(p), (p[f] || 0) / (p.rounds || 1)]);
  linePlot($("bytes-plot"), [
    { name: "in", pts: per("bytes_in"), bars: true, cls: "c0" },
    { name: "out", pts: per("bytes_out"), bars: true, cls: "c2" },
  ], { zero: true, yfmt: "bytes" });

  const card = $("compute-card");
  if (s.compute) {
    card.classList.remove("hidden");
    const f = $("compute-facts");
    f.replaceChildren();
    fact(f, "device", s.compute.device || "–");
    fact(f, "throughput", `${fmtNum(s.compute.throughput, 1)} ${s.compute.unit}` + (s.compute.attested ? " · attested" : " · not attested"));
    fact(f, "round", s.compute.round);
    linePlot($("compute-plot"), [{ name: s.compute.unit || "throughput", pts: pick("throughput"), cls: "c3" }], { zero: true });
  } else {
    card.classList.add("hidden");
  }
}

function fact(dl, k, v) {
  dl.appendChild(el("dt", {}, k));
  dl.appendChild(el("dd", {}, v));
}

function renderFacts(s) {
  const f = $("facts");
  f.replaceChildren();
  fact(f, "role", s.role);
  fact(f, "peer", s.peer);
  if (s.role !== "bootstrap") {
    fact(f, "rounds applied", `${s.rounds_applied} (${s.catch_ups} catch-ups)`);
    if (s.role === "trainer") fact(f, "announced", `${s.announced} (missed ${s.missed})`);
    fact(f, "checkpoint", `round ${s.checkpoint ? s.checkpoint.round : "–"}`);
    fact(f, "traffic total", `${fmtBytes(s.bytes_in)} in · ${fmtBytes(s.bytes_out)} out`);
  }
  const e = $("last-error");
  if (s.last_error) {
    e.replaceChildren(el("span", { class: "when" }, `last ${s.last_error.level.toLowerCase()} · ${s.last_error.time}`),
      document.createTextNode(s.last_error.message));
    e.classList.remove("hidden");
  } else {
    e.classList.add("hidden");
  }
}

function pill(cls, text) { return el("span", { class: "pill " + cls }, text); }

function renderPeers(s) {
  const rows = s.peer_list || [];
  set("peers-count", `${rows.length} peer${rows.length === 1 ? "" : "s"}` + ((s.peers_seen || 0) > rows.length ? ` of ${s.peers_seen}` : "") + ` · ${s.peers} connected`);
  const tb = $("peers").tBodies[0];
  const maxScore = Math.max(1e-9, ...rows.map(r => r.score || 0));
  tb.replaceChildren(...rows.map(r => {
    const tr = el("tr");
    const id = el("td", { class: "mono", title: r.peer }, short(r.peer));
    tr.appendChild(id);
    const role = el("td");
    role.appendChild(pill(r.role, r.role + (r.stake !== undefined ? ` ${(100 * r.stake).toFixed(0)}%` : "")));
    tr.appendChild(role);
    const addr = el("td");
    if (r.connected) {
      addr.appendChild(pill(r.addr, r.addr));
      addr.appendChild(el("span", { class: "dim" }, " " + (r.transport || "")));
    } else {
      addr.appendChild(pill("offline", "not connected"));
    }
    tr.appendChild(addr);
    tr.appendChild(el("td", { class: "num" }, r.latency_ms !== undefined ? r.latency_ms.toFixed(1) + " ms" : "–"));
    tr.appendChild(el("td", { class: "num" }, r.last_announced !== undefined ? r.last_announced : "–"));
    tr.appendChild(el("td", { class: "num" }, r.last_contribution !== undefined ? r.last_contribution : "–"));
    const sc = el("td", { class: "num" }, r.score !== undefined ? fmtNum(r.score, 4) : "–");
    if (r.score !== undefined && r.score > 0) {
      // CSSOM, not a style attribute: the page's CSP forbids inline styles.
      const bar = el("span", { class: "bar-cell" });
      bar.style.width = Math.round(40 * r.score / maxScore) + "px";
      sc.appendChild(bar);
    }
    tr.appendChild(sc);
    return tr;
  }));
}

function renderScores(s) {
  const t = s.score_table, card = $("scores-card");
  if (!t || !t.rounds || t.rounds.length === 0) { card.classList.add("hidden"); return; }
  card.classList.remove("hidden");
  set("scores-by", `by validator ${short(t.validator)}, last ${t.rounds.length} rounds`);
  const head = el("tr");
  head.appendChild(el("th", {}, "trainer"));
  for (const r of t.rounds) head.appendChild(el("th", { class: "num" }, "round " + r));
  head.appendChild(el("th", { class: "num" }, "smoothed"));
  $("scores").tHead.replaceChildren(head);
  $("scores").tBodies[0].replaceChildren(...(t.rows || []).map(row => {
    const tr = el("tr");
    tr.appendChild(el("td", { class: "mono", title: row.trainer }, short(row.trainer)));
    for (const c of row.cells) {
      if (!c) { tr.appendChild(el("td", { class: "num dim" }, "·")); continue; }
      const td = el("td", { class: "num " + (c.ok ? "cell-ok" : "cell-bad"), title: c.reason || "" },
        c.ok ? fmtNum(c.score, 4) : "✗ " + (c.kind || "rejected"));
      tr.appendChild(td);
    }
    tr.appendChild(el("td", { class: "num" }, fmtNum(row.smoothed, 4)));
    return tr;
  }));
}

function renderAgreement(s) {
  const a = s.agreement, card = $("agreement-card");
  if (!a) { card.classList.add("hidden"); return; }
  card.classList.remove("hidden");
  $("agreement").tBodies[0].replaceChildren(...(a.validators || []).map(v => {
    const tr = el("tr");
    tr.appendChild(el("td", { class: "mono", title: v.validator }, short(v.validator)));
    tr.appendChild(el("td", { class: "num" }, v.verdicts));
    tr.appendChild(el("td", { class: "num" }, (100 * v.agree).toFixed(0) + "%"));
    return tr;
  }));
  linePlot($("agreement-plot"), [{ name: "unanimous verdicts", pts: (a.rounds || []).map(r => [r.round, r.trainers ? r.unanimous : null]), cls: "c3" }], { zero: true, height: 150 });
}

function renderRejections(s) {
  const rs = s.rejections || [], card = $("rejections-card");
  if (rs.length === 0) { card.classList.add("hidden"); return; }
  card.classList.remove("hidden");
  $("rejections").tBodies[0].replaceChildren(...rs.slice().reverse().map(r => {
    const tr = el("tr");
    tr.appendChild(el("td", { class: "num" }, r.round));
    tr.appendChild(el("td", { class: "mono", title: r.trainer }, short(r.trainer)));
    tr.appendChild(el("td", { class: "mono dim", title: r.validator }, short(r.validator)));
    const k = el("td");
    k.appendChild(pill("kind", r.kind));
    tr.appendChild(k);
    tr.appendChild(el("td", { class: "reason" }, r.reason));
    return tr;
  }));
}

function render(s) {
  renderHeader(s);
  renderPlots(s);
  renderFacts(s);
  renderPeers(s);
  renderScores(s);
  renderAgreement(s);
  renderRejections(s);
}

// The page passes its own ?points= and ?peers= on to the API (the server
// checks them).
const api = (() => {
  const page = new URLSearchParams(location.search), q = new URLSearchParams();
  for (const k of ["points", "peers"]) if (page.has(k)) q.set(k, page.get(k));
  const qs = q.toString();
  return "/api/status" + (qs ? "?" + qs : "");
})();

async function poll() {
  try {
    const r = await fetch(api, { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
    $("conn").className = "dot live";
    set("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (e) {
    $("conn").className = "dot down";
    set("updated", "no answer from the node (" + e.message + ")");
  }
  setTimeout(poll, POLL_MS);
}

poll();
