// Nightrunner status page: no build step, no dependencies. Everything updates from the
// event stream (server-sent events and MJPEG); the status is fetched again when an event
// says it changed, never on a timer.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const LOOPBACK = ["127.0.0.1", "localhost", "::1", "[::1]"].includes(location.hostname);
  const KEY = "nightrunner-token";
  let token = new URLSearchParams(location.search).get("token") || localStorage.getItem(KEY) || "";
  const points = [];
  const sources = [];
  let status = {};

  const withToken = (path) =>
    token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
  const headers = () => (token ? { authorization: "Bearer " + token } : {});

  async function call(method, params) {
    const r = await fetch("/api/v1/" + method, {
      method: "POST", body: JSON.stringify(params || {}),
      headers: { "content-type": "application/json", ...headers() },
    });
    if (r.status === 401) { askToken(); throw new Error("unauthorized"); }
    return r.json();
  }

  function askToken() {
    sources.splice(0).forEach((s) => s.close());
    $("login").hidden = false;
    $("conn").textContent = "token needed";
    $("conn").className = "conn";
  }

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    localStorage.setItem(KEY, token);
    $("login").hidden = true;
    connect();
  });

  // ------------------------------------------------------------------ status

  let inFlight = false, again = false;
  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const reply = await call("status");
      if (reply.result) { status = reply.result; render(); }
    } catch (e) { /* shown by the connection state */ }
    inFlight = false;
    if (again) { again = false; refresh(); }
  }

  const text = (id, value) => { $(id).textContent = value == null || value === "" ? "—" : value; };

  function render() {
    const s = status, f = s.frames || {};
    text("plan", s.plan);
    text("phase", s.phase);
    $("state").textContent = s.paused ? "(paused)" : s.pause_requested ? "(pausing…)" : s.state || "";
    text("target", s.target);
    text("filter", s.filter);
    const done = f.light || 0, planned = f.planned_light;
    $("frames").textContent = planned ? `${done} / ${planned}` : `${done}`;
    $("bar").max = planned || 1;
    $("bar").value = planned ? done : 0;
    const exp = s.exposure;
    $("exposure").textContent = exp ? `exposing ${exp.type} ${exp.seconds} s, ${s.exposure_remaining ?? "?"} s left` : "";
    let eta = null;
    if (planned && exp && s.speed) {
      const seconds = ((planned - done) * exp.seconds) / s.speed;
      eta = new Date(Date.now() + seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
    text("eta", eta);
    document.body.dataset.phase = s.phase || "";
    document.body.dataset.running = s.running ? "yes" : "no";
  }

  // ------------------------------------------------------------------ graphs

  const COLOURS = ["#e05050", "#e0a040", "#60a0e0"];

  function drawGraph(canvas) {
    const keys = canvas.dataset.keys.split(",");
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    const rows = points.filter((p) => keys.some((k) => typeof p[k] === "number"));
    canvas.dataset.points = String(rows.length);
    ctx.fillStyle = "#a08888";
    ctx.font = "12px system-ui";
    ctx.fillText(canvas.dataset.title + (rows.length ? "" : " (no data yet)"), 6, 14);
    if (!rows.length) return;
    keys.forEach((k, i) => {
      const vals = rows.map((p) => p[k]).filter((v) => typeof v === "number");
      if (!vals.length) return;
      let lo = Math.min(...vals), hi = Math.max(...vals);
      if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
      ctx.strokeStyle = COLOURS[i % COLOURS.length];
      ctx.lineWidth = 2;
      ctx.beginPath();
      let n = 0;
      rows.forEach((p, j) => {
        if (typeof p[k] !== "number") return;
        const x = rows.length === 1 ? W / 2 : 4 + (j * (W - 8)) / (rows.length - 1);
        const y = H - 6 - ((p[k] - lo) * (H - 26)) / (hi - lo);
        n++ === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
        if (rows.length === 1) ctx.arc(x, y, 2, 0, 7);
      });
      ctx.stroke();
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(`${k} ${vals[vals.length - 1].toFixed(2)}`, 6 + i * 150, 28);
    });
  }
  const drawGraphs = () => document.querySelectorAll("canvas.graph").forEach(drawGraph);

  function drawHistogram(h) {
    const c = $("hist"), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    const chans = h.type === "rgb" ? [["R", "#e05050"], ["G", "#50c050"], ["B", "#5080e0"]] : [["Y", "#d0c0c0"]];
    chans.forEach(([name, colour]) => {
      const bins = h[name] || [];
      const top = Math.max(...bins, 1e-9);
      ctx.strokeStyle = colour;
      ctx.beginPath();
      bins.forEach((v, i) => {
        const x = (i * c.width) / bins.length, y = c.height - (Math.sqrt(v / top) * (c.height - 4));
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      });
      ctx.stroke();
    });
    c.dataset.updates = String(Number(c.dataset.updates || 0) + 1);
  }

  // ------------------------------------------------------------------ events

  function describe(e) {
    const skip = new Set(["event", "time", "clock", "seq"]);
    if (e.event === "frame") {
      const hfr = e.hfr ? ` HFR ${e.hfr.toFixed(2)}` : "";
      return `frame ${e.type} ${e.filter || ""} ${e.exposure}s${hfr}`;
    }
    const rest = Object.entries(e).filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
    return `${e.event} ${rest}`.slice(0, 200);
  }

  function addLog(e) {
    const li = document.createElement("li");
    const when = (e.clock || e.time || "").slice(11, 19);
    li.textContent = `${when} ${describe(e)}`;
    li.className = e.event;
    const ol = $("log");
    ol.prepend(li);
    while (ol.children.length > 200) ol.lastChild.remove();
  }

  const QUIET = new Set(["exposure_start"]);  // the status shows the exposure itself

  function onNight(item) {
    if (item.point) { points.push(item.point); drawGraphs(); }
    if (!QUIET.has(item.event.event)) addLog(item.event);
    refresh();
  }

  function listen(path, handler) {
    const es = new EventSource(withToken(path));
    es.onmessage = (m) => handler(JSON.parse(m.data));
    es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn live"; };
    es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn"; };
    sources.push(es);
  }

  async function connect() {
    const r = await fetch("/api/night/history", { headers: headers() });
    if (r.status === 401) { askToken(); return; }
    const h = await r.json();
    points.splice(0, points.length, ...h.history);
    h.log.forEach(addLog);
    drawGraphs();
    listen("/api/updates/night", onNight);
    listen("/api/updates/stacked/histogram", drawHistogram);
    listen("/api/updates/stacking_status", (s) => {
      $("stackinfo").textContent = `${s.status}: ${s.stacked} stacked, ${s.dropped} dropped`;
    });
    $("live").src = withToken("/api/video/live");
    $("stacked").src = withToken("/api/video/stacked");
    refresh();
  }

  // ------------------------------------------------------------------ controls

  const QUESTIONS = {
    abort: "Abort the night? The exposure stops and the shutdown sequence makes the rig safe.",
    pause: "Pause between exposures?", resume: "Resume the night?",
    skip: "Skip the rest of this target?",
  };
  document.querySelectorAll("button[data-act]").forEach((b) => b.addEventListener("click", () => {
    const act = b.dataset.act, dlg = $("confirm");
    $("confirm-text").textContent = QUESTIONS[act];
    dlg.returnValue = "";
    dlg.onclose = async () => {
      if (dlg.returnValue !== "ok") return;
      const reply = await call(act, act === "skip" ? { what: "target" } : {});
      addLog({ event: act, ...(reply.error ? { error: reply.error.message } : reply.result) });
      refresh();
    };
    dlg.showModal();
  }));

  window.nightrunner = { points, refresh };
  if (!LOOPBACK && !token) askToken(); else connect();
})();
