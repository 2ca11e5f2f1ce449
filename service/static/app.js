// M2S-live dashboard: live class probabilities per attached stream, stream health and model info.
//
// Data sources (all relative to the page, so the dashboard also works behind a path prefix):
//   WebSocket ws        {"type": "state", "state": EmotionState} and {"type": "dropped", "count": n}
//   GET streams         {"data": [StreamPublic], "count": n}, polled every STREAMS_POLL_MS
//   GET v2/health/ready readiness and the execution providers in use, polled every READY_POLL_MS
//   GET v2/models/{name} model metadata, fetched once per model name
//   GET calibrations    live calibrations (their trials are drawn on the streams' timelines), every
//                       STREAMS_POLL_MS; the one shown in the calibration panel every CALIBRATION_POLL_MS
//                       while the panel is open; POST/DELETE calibrations... from the panel's controls
//   GET recordings      session recordings and the other files of the recordings folder, every
//                       RECORDINGS_POLL_MS while the recordings panel is open; GET recordings/{id} of the
//                       shown calibration's recording with it; POST/DELETE recordings... from the panel
// A `?token=...` in the page URL is passed to the WebSocket as `?token=` and to REST as a bearer header.
// No framework, no build step, no CDN: lab machines are often offline.
"use strict";

(function () {
  const WINDOW_S = 120; // plotted history
  const GAP_S = 5; // points further apart than this are not joined (no line across a data gap)
  const STREAMS_POLL_MS = 3000;
  const READY_POLL_MS = 10000;
  const CALIBRATION_POLL_MS = 1000;
  const RECORDINGS_POLL_MS = 2000;
  const REDRAW_MS = 1000; // the time axis scrolls even when no state arrives
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  // Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"];

  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");

  const cards = new Map(); // stream id -> Card
  const modelInfo = new Map(); // model name -> metadata (or null while loading / on error)
  let serviceProviders = []; // every provider reported by /v2/health/ready
  let readyBody = null; // last /v2/health/ready answer
  let droppedTotal = 0;
  let streamInfos = []; // last GET /streams list

  // Calibrations (docs/design/CALIBRATION.md §3). Their trials are marked on the timelines of their streams.
  const calibrations = new Map(); // calibration id -> CalibrationPublic (latest seen)
  // Browser clock minus the service's LSL clock (s), estimated when this page sets a REST label (the label is
  // stamped with the service's LSL clock): places trials on a timeline that has no state (no lsl_time) yet.
  let restLabelClock = null;
  const fitResults = new Map(); // calibration id -> the answer of its POST .../fit (shown until GET has it)
  // Session recordings (docs/design/CALIBRATION.md §4), this run's, and those of calibrations ("record": true).
  const recordings = new Map(); // recording id -> RecordingPublic (latest seen)

  // ---------------------------------------------------------------- helpers

  function apiUrl(path) {
    return new URL(path, document.baseURI);
  }

  async function apiGet(path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(apiUrl(path), { headers, cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      throw new Error(
        "GET /" + path + ": not authorised (" + response.status + "); open the dashboard with ?token=<API token>."
      );
    }
    if (!response.ok) throw new Error("GET /" + path + ": HTTP " + response.status);
    return response.json();
  }

  // Any method; the answer's JSON, or an Error whose message is the service's `detail` sentence.
  async function apiRequest(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(apiUrl(path), init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      let detail = data && data.detail;
      if (typeof detail !== "string") detail = detail ? JSON.stringify(detail) : "HTTP " + response.status;
      if (response.status === 401 || response.status === 403) {
        detail += " Open the dashboard with ?token=<API token>.";
      }
      const err = new Error(detail);
      err.status = response.status;
      throw err;
    }
    return data;
  }

  function pct(value) {
    return Number.isFinite(value) ? (100 * value).toFixed(1) + " %" : "–";
  }

  function hexToRgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + ", " + ((n >> 8) & 255) + ", " + (n & 255) + ", " + alpha + ")";
  }

  function fmt(value, digits, unit) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    return value.toFixed(digits) + (unit ? " " + unit : "");
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  // Bytes in powers of 1000, as `m2s record` prints them: "512 B", "12.3 kB", "4.5 MB".
  function formatBytes(n) {
    if (!Number.isFinite(n)) return "–";
    if (n < 1000) return n + " B";
    const units = [["kB", 1e3], ["MB", 1e6], ["GB", 1e9]];
    for (const [unit, scale] of units) {
      if (n < scale * 1000 || unit === "GB") return (n / scale).toFixed(1) + " " + unit;
    }
    return n + " B";
  }

  // Providers may come as ["CUDAExecutionProvider"], [{"provider": ...}], {"model/eeg": "CPU..."} or a string.
  function providersOf(obj) {
    if (!obj || typeof obj !== "object") return [];
    const raw = obj.providers ?? obj.execution_providers ?? obj.provider ?? obj.parameters?.providers;
    const out = [];
    const add = (v) => {
      if (typeof v === "string") out.push(v);
      else if (Array.isArray(v)) v.forEach(add);
      else if (v && typeof v === "object") {
        if (typeof v.provider === "string") out.push(v.provider);
        else Object.values(v).forEach(add);
      }
    };
    add(raw);
    return [...new Set(out)];
  }

  function shortProvider(name) {
    return name.replace(/ExecutionProvider$/, "");
  }

  function showServiceError(message) {
    const el = document.getElementById("service-error");
    if (message) {
      setText(el, message);
      el.hidden = false;
    } else {
      el.hidden = true;
    }
  }

  // ---------------------------------------------------------------- stream card

  class Card {
    constructor(id) {
      this.id = id;
      const tpl = document.getElementById("stream-card-template");
      this.root = tpl.content.firstElementChild.cloneNode(true);
      this.root.dataset.streamId = id;
      const q = (sel) => this.root.querySelector(sel);
      this.el = {
        title: q(".stream-title"),
        connectedBadge: q(".connected-badge"),
        stale: q(".stale"),
        label: q(".label"),
        probs: q(".probs"),
        canvas: q(".plot"),
        markers: q(".markers"),
        legend: q(".legend"),
        connected: q(".connected"),
        dataAge: q(".data-age"),
        srate: q(".srate"),
        reconnects: q(".reconnects"),
        latency: q(".latency"),
        nStates: q(".n-states"),
        lastError: q(".last-error"),
        modelRef: q(".model-ref"),
        modality: q(".modality"),
        provider: q(".provider"),
        selector: q(".selector"),
        channels: q(".channels"),
      };
      setText(this.el.title, id);
      this.classes = []; // class names in a stable order (first seen)
      this.points = []; // {t: server wall time (s), p: {class: prob}}
      this.clockOffset = 0; // server wall clock minus browser clock (s)
      this.lslOffset = null; // server wall clock minus this stream's LSL clock (s), from the latest state
      this.nStates = 0;
      this.modelRef = null; // "name:version"
      this.fromStreams = false; // listed by GET /streams (else only seen on the WebSocket)
      document.getElementById("streams").appendChild(this.root);
    }

    remove() {
      this.root.remove();
    }

    setStale(stale) {
      this.root.dataset.stale = String(stale);
      this.el.stale.hidden = !stale;
    }

    setConnected(connected) {
      const state = connected ? "true" : "false";
      this.root.dataset.connected = state;
      this.el.connectedBadge.dataset.connected = state;
      setText(this.el.connectedBadge, connected ? "connected" : "disconnected");
      setText(this.el.connected, connected ? "yes" : "no");
    }

    setModel(model, modality) {
      if (model && model.name) {
        this.modelRef = model.name + ":" + model.version;
        setText(this.el.modelRef, this.modelRef);
        requestModelInfo(model.name, model.version);
      }
      if (modality) {
        setText(this.el.modality, modality);
        this.root.dataset.modality = modality;
      }
      this.renderProvider();
    }

    // Most specific first: the provider this model version runs this modality on (/v2/health/ready),
    // then the model metadata (/v2/models/{name}/versions/{v}), then every provider the service uses.
    renderProvider() {
      const modality = this.root.dataset.modality;
      let providers = [];
      const byModel = readyBody?.providers;
      if (this.modelRef && byModel && typeof byModel === "object" && !Array.isArray(byModel)) {
        const entry = byModel[this.modelRef];
        if (typeof entry === "string") providers = [entry];
        else if (entry && typeof entry === "object" && modality && typeof entry[modality] === "string") {
          providers = [entry[modality]];
        }
      }
      const meta = this.modelRef ? modelInfo.get(this.modelRef) : null;
      if (!providers.length && meta) {
        const perModality = meta.modalities?.[modality];
        providers = perModality?.provider ? [perModality.provider] : providersOf(meta);
      }
      if (!providers.length) providers = serviceProviders;
      setText(this.el.provider, providers.length ? providers.map(shortProvider).join(", ") : "–");
      if (Array.isArray(meta?.class_names)) this.ensureClasses(meta.class_names);
    }

    ensureClasses(names) {
      let changed = false;
      for (const name of names) {
        if (!this.classes.includes(name)) {
          this.classes.push(name);
          changed = true;
        }
      }
      if (changed) this.renderLegend();
    }

    colour(name) {
      return PALETTE[this.classes.indexOf(name) % PALETTE.length];
    }

    renderLegend() {
      this.el.legend.replaceChildren();
      this.el.probs.replaceChildren();
      for (const name of this.classes) {
        const item = document.createElement("li");
        item.dataset.class = name;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = this.colour(name);
        swatch.setAttribute("aria-hidden", "true");
        item.append(swatch, document.createTextNode(name));
        this.el.legend.appendChild(item);

        const row = document.createElement("li");
        row.dataset.class = name;
        const label = document.createElement("span");
        label.className = "prob-name";
        label.textContent = name;
        const bar = document.createElement("span");
        bar.className = "prob-bar";
        const fill = document.createElement("span");
        fill.className = "prob-fill";
        fill.style.background = this.colour(name);
        bar.appendChild(fill);
        const value = document.createElement("span");
        value.className = "prob-value";
        value.textContent = "–";
        row.append(label, bar, value);
        this.el.probs.appendChild(row);
      }
    }

    // One EmotionState from the WebSocket.
    onState(state) {
      const probs = state.probabilities || {};
      this.ensureClasses(Object.keys(probs));
      const t = Number.isFinite(state.wall_time) ? state.wall_time : Date.now() / 1000;
      this.clockOffset = t - Date.now() / 1000;
      // A state is plotted at its wall_time; the trial boundaries (LSL times) go where the states of the same
      // LSL time are plotted.
      if (Number.isFinite(state.lsl_time) && Number.isFinite(state.wall_time)) {
        this.lslOffset = state.wall_time - state.lsl_time;
      }
      this.points.push({ t, p: probs });
      this.prune();
      this.nStates += 1;

      setText(this.el.label, state.label ?? "–");
      this.el.label.dataset.label = state.label ?? "";
      this.el.label.style.color = state.label ? this.colour(state.label) : "";
      for (const row of this.el.probs.children) {
        const p = probs[row.dataset.class];
        row.querySelector(".prob-fill").style.width = Number.isFinite(p) ? (100 * p).toFixed(1) + "%" : "0";
        setText(row.querySelector(".prob-value"), Number.isFinite(p) ? (100 * p).toFixed(0) + "%" : "–");
        row.classList.toggle("top", row.dataset.class === state.label);
      }
      this.setStale(Boolean(state.stale));
      if (state.data_age_s !== null && state.data_age_s !== undefined) {
        setText(this.el.dataAge, fmt(state.data_age_s, 2, "s"));
      }
      setText(this.el.latency, fmt(state.latency_ms, 0, "ms"));
      setText(this.el.nStates, String(this.nStates));
      this.setModel(state.model, state.modality);
      this.scheduleDraw();
    }

    // One StreamPublic from GET /streams.
    onStreamInfo(info) {
      this.fromStreams = true;
      this.setConnected(Boolean(info.connected));
      if (info.health === "unusable") {
        // Connected, but the source cannot feed the model (rate, channels, units): no state will come.
        this.el.connectedBadge.dataset.connected = "unusable";
        setText(this.el.connectedBadge, "cannot serve: see last error");
      }
      this.setStale(Boolean(info.stale));
      setText(this.el.dataAge, fmt(info.data_age_s, 2, "s"));
      setText(this.el.srate, fmt(info.effective_srate, 1, "Hz"));
      setText(this.el.reconnects, String(info.n_reconnects ?? "–"));
      setText(this.el.lastError, info.last_error || "none");
      this.el.lastError.classList.toggle("error", Boolean(info.last_error));
      if (info.selector && typeof info.selector === "object") {
        const parts = Object.entries(info.selector)
          .filter(([, v]) => v !== null && v !== undefined)
          .map(([k, v]) => k + "=" + v);
        setText(this.el.selector, parts.join(", ") || "–");
      }
      if (Array.isArray(info.channels)) {
        const sfreq = Number.isFinite(info.sfreq) ? " @ " + fmt(info.sfreq, 0, "Hz") : "";
        setText(this.el.channels, info.channels.length + sfreq);
        this.el.channels.title = info.channels.join(", ");
      }
      this.setModel(info.model, info.modality);
    }

    prune() {
      const oldest = this.points.length ? this.points[this.points.length - 1].t - WINDOW_S - GAP_S : 0;
      let drop = 0;
      while (drop < this.points.length && this.points[drop].t < oldest) drop += 1;
      if (drop) this.points.splice(0, drop);
    }

    scheduleDraw() {
      if (this.drawPending) return;
      this.drawPending = true;
      // rAF pauses in hidden tabs; the timeout keeps the plot (and its data-points count) current anyway.
      const run = () => {
        if (!this.drawPending) return;
        this.drawPending = false;
        this.draw();
      };
      window.requestAnimationFrame(run);
      window.setTimeout(run, 250);
    }

    draw() {
      const canvas = this.el.canvas;
      const dpr = window.devicePixelRatio || 1;
      const cssWidth = Math.max(200, canvas.clientWidth || 640);
      const cssHeight = Math.max(120, canvas.clientHeight || 240);
      if (canvas.width !== Math.round(cssWidth * dpr) || canvas.height !== Math.round(cssHeight * dpr)) {
        canvas.width = Math.round(cssWidth * dpr);
        canvas.height = Math.round(cssHeight * dpr);
      }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, cssWidth, cssHeight);

      const pad = { left: 40, right: 12, top: 10, bottom: 26 };
      const w = cssWidth - pad.left - pad.right;
      const h = cssHeight - pad.top - pad.bottom;
      const now = Date.now() / 1000 + this.clockOffset;
      const x = (t) => pad.left + w * (1 - (now - t) / WINDOW_S);
      const y = (p) => pad.top + h * (1 - p);

      // Axes and grid: y from 0 to 1, time in seconds before now.
      ctx.font = "12px system-ui, sans-serif";
      ctx.lineWidth = 1;
      ctx.strokeStyle = "#d8dde3";
      ctx.fillStyle = "#4a5560";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const p of [0, 0.25, 0.5, 0.75, 1]) {
        ctx.beginPath();
        ctx.moveTo(pad.left, y(p) + 0.5);
        ctx.lineTo(pad.left + w, y(p) + 0.5);
        ctx.stroke();
        ctx.fillText(p.toFixed(2), pad.left - 6, y(p));
      }
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (let s = 0; s <= WINDOW_S; s += 20) {
        const xs = pad.left + w * (1 - s / WINDOW_S);
        ctx.beginPath();
        ctx.moveTo(xs + 0.5, pad.top);
        ctx.lineTo(xs + 0.5, pad.top + h);
        ctx.stroke();
        ctx.fillText(s === 0 ? "now" : "−" + s + " s", xs, pad.top + h + 6);
      }

      // One line per class; a gap of more than GAP_S seconds breaks the line.
      ctx.save();
      ctx.beginPath();
      ctx.rect(pad.left, pad.top - 2, w, h + 4);
      ctx.clip();
      ctx.lineWidth = 2;
      ctx.lineJoin = "round";
      let drawn = 0;
      let series = 0;
      const visible = this.points.filter((pt) => pt.t >= now - WINDOW_S - GAP_S);
      for (const name of this.classes) {
        ctx.strokeStyle = this.colour(name);
        ctx.fillStyle = this.colour(name);
        ctx.beginPath();
        let prevT = null;
        let n = 0;
        for (const pt of visible) {
          const p = pt.p[name];
          if (!Number.isFinite(p)) {
            prevT = null;
            continue;
          }
          if (prevT === null || pt.t - prevT > GAP_S) ctx.moveTo(x(pt.t), y(p));
          else ctx.lineTo(x(pt.t), y(p));
          prevT = pt.t;
          if (pt.t >= now - WINDOW_S) n += 1;
        }
        ctx.stroke();
        // A lone point (first state, or after a gap) would be invisible as a line: mark the latest one.
        const last = visible[visible.length - 1];
        if (last && Number.isFinite(last.p[name])) {
          ctx.beginPath();
          ctx.arc(x(last.t), y(last.p[name]), 3, 0, 2 * Math.PI);
          ctx.fill();
        }
        drawn += n;
        if (n) series += 1;
      }
      ctx.restore();
      canvas.dataset.points = String(drawn);
      canvas.dataset.series = String(series);
      this.drawMarkers(now, x, pad.left, pad.left + w, pad.top, h);
    }

    // The trials of the calibrations on this stream as labelled spans over the plot (DOM, not canvas: each
    // has its label as text, a tooltip and data-* attributes). Used trials are filled with the class colour;
    // trials not used (test phase, unknown label, no complete window) are hatched grey with a dashed edge.
    drawMarkers(now, x, left, right, top, height) {
      const list = this.el.markers;
      const spans = [];
      for (const cal of calibrations.values()) {
        if (!Array.isArray(cal.streams) || !cal.streams.includes(this.id)) continue;
        const cancelled = cal.state === "cancelled"; // its windows were dropped: no trial of it is used
        for (const ev of cal.events || []) {
          let offset = this.lslOffset;
          let placement = "states";
          if (offset === null) {
            if (restLabelClock === null) continue; // no state and no clock estimate: nowhere to put it
            offset = restLabelClock + this.clockOffset;
            placement = "estimated";
          }
          const start = ev.start + offset;
          const open = ev.end === null || ev.end === undefined;
          const end = open ? Math.max(now, start) : ev.end + offset;
          if (end < now - WINDOW_S || start > now + 1) continue; // (+1 s: an estimated start may be a bit ahead)
          const clamp = (v) => Math.min(right, Math.max(left, v));
          const x0 = Math.min(clamp(x(start)), right - 2);
          const used = Boolean(ev.used) && !cancelled;
          spans.push({ cal, ev, open, used, placement, x0, x1: Math.max(x0 + 2, clamp(x(end))) });
        }
      }
      const items = spans.map(({ cal, ev, open, used, placement, x0, x1 }) => {
        const item = document.createElement("li");
        item.className = "marker";
        const label = ev.label ?? "(no label)";
        const classes = Object.keys(cal.trials || {});
        const known = this.classes.includes(ev.label) || classes.includes(ev.label);
        const colour = !known
          ? "#5b6773"
          : this.classes.includes(ev.label)
            ? this.colour(ev.label)
            : PALETTE[classes.indexOf(ev.label) % PALETTE.length];
        const status = open
          ? "open"
          : used
            ? "used for calibration"
            : ev.phase === "test"
              ? "test phase, not used"
              : cal.state === "cancelled"
                ? "not used (calibration cancelled)"
                : "not used";
        item.dataset.label = ev.label ?? "";
        item.dataset.used = String(used);
        item.dataset.open = String(open);
        item.dataset.phase = ev.phase ?? "";
        item.dataset.calibration = cal.id;
        item.dataset.placement = placement;
        item.style.left = x0.toFixed(1) + "px";
        item.style.width = (x1 - x0).toFixed(1) + "px";
        item.style.top = top + "px";
        item.style.height = height + "px";
        item.style.borderColor = colour;
        if (used || open) item.style.background = hexToRgba(colour, open ? 0.1 : 0.16);
        const text = document.createElement("span");
        text.className = "marker-label";
        text.textContent = label + (ev.phase === "test" ? " (test)" : "");
        text.style.color = colour;
        item.title =
          label + " trial, " + status + " (calibration " + cal.id + ", participant " + cal.participant + ")" +
          (placement === "estimated" ? "; position estimated from the label clock" : "");
        item.setAttribute("aria-label", label + " trial, " + status);
        item.appendChild(text);
        return item;
      });
      list.replaceChildren(...items);
      list.dataset.count = String(items.length);
    }
  }

  function cardFor(id) {
    let card = cards.get(id);
    if (!card) {
      card = new Card(id);
      cards.set(id, card);
      updateStreamsCount();
    }
    return card;
  }

  function updateStreamsCount() {
    const el = document.getElementById("streams-count");
    el.dataset.count = String(cards.size);
    setText(el, String(cards.size));
    document.getElementById("no-streams").hidden = cards.size > 0;
  }

  // ---------------------------------------------------------------- REST polling

  async function pollStreams() {
    try {
      const body = await apiGet("streams");
      const list = Array.isArray(body) ? body : body.data || [];
      streamInfos = list;
      renderCalibrationStreams();
      renderRecordingStreams();
      const seen = new Set();
      for (const info of list) {
        seen.add(info.id);
        cardFor(info.id).onStreamInfo(info);
      }
      // A stream detached on the server disappears; one seen only on the WebSocket stays.
      for (const [id, card] of cards) {
        if (card.fromStreams && !seen.has(id)) {
          card.remove();
          cards.delete(id);
        }
      }
      updateStreamsCount();
      showServiceError(null);
    } catch (err) {
      showServiceError(err.message);
    }
  }

  async function pollReady() {
    const el = document.getElementById("service-ready");
    try {
      const headers = {};
      if (token) headers.Authorization = "Bearer " + token;
      const response = await fetch(apiUrl("v2/health/ready"), { headers, cache: "no-store" });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      const ready = response.ok && (body?.ready ?? true) !== false;
      el.dataset.ready = String(ready);
      setText(el, ready ? "ready" : "not ready (" + response.status + ")");
      readyBody = body;
      serviceProviders = providersOf(body);
      setText(
        document.getElementById("service-providers"),
        serviceProviders.length ? serviceProviders.map(shortProvider).join(", ") : "–"
      );
      for (const card of cards.values()) card.renderProvider();
    } catch (err) {
      el.dataset.ready = "unknown";
      setText(el, "unreachable");
    }
    // Loaded models ("name:version") from the readiness answer, else the repository's list.
    let names = Array.isArray(readyBody?.models) ? readyBody.models.filter((m) => typeof m === "string") : [];
    if (!names.length) {
      try {
        const body = await apiGet("v2/models");
        const models = Array.isArray(body) ? body : body.data || body.models || [];
        names = models.map((m) => {
          if (typeof m === "string") return m;
          const versions = m.versions ?? (m.version !== undefined ? [m.version] : []);
          return m.name + (versions.length ? ":" + versions.join("/") : "");
        });
      } catch (_) {
        // Optional: the models list is informative only.
      }
    }
    setText(document.getElementById("service-models"), names.length ? names.join(", ") : "–");
    renderModelOptions(names);
  }

  function requestModelInfo(name, version) {
    const ref = name + ":" + version;
    if (modelInfo.has(ref)) return;
    modelInfo.set(ref, null);
    apiGet("v2/models/" + encodeURIComponent(name) + "/versions/" + encodeURIComponent(version))
      .then((meta) => {
        modelInfo.set(ref, meta);
        for (const card of cards.values()) if (card.modelRef === ref) card.renderProvider();
      })
      .catch(() => {
        // Leave null: the service-wide providers are shown instead.
      });
  }

  // ---------------------------------------------------------------- calibration panel

  const cal = {
    panel: document.getElementById("calibration"),
    summary: document.getElementById("cal-summary"),
    select: document.getElementById("cal-select"),
    error: document.getElementById("cal-error"),
    start: document.getElementById("cal-start"),
    startButton: document.getElementById("cal-start-button"),
    participant: document.getElementById("cal-participant"),
    model: document.getElementById("cal-model"),
    modelList: document.getElementById("cal-model-list"),
    streamList: document.getElementById("cal-stream-list"),
    noStreams: document.getElementById("cal-no-streams"),
    markerSelector: document.getElementById("cal-marker-selector"),
    active: document.getElementById("cal-active"),
    labelButtons: document.getElementById("cal-label-buttons"),
    counts: document.getElementById("cal-counts"),
    fit: document.getElementById("cal-fit"),
    fitButton: document.getElementById("cal-fit-button"),
    trainModality: document.getElementById("cal-train-modality"),
    activate: document.getElementById("cal-activate"),
    result: document.getElementById("cal-result"),
    cancel: document.getElementById("cal-cancel"),
    record: document.getElementById("cal-record"),
  };
  let calSupported = null; // false once GET /calibrations answers 404 (a service without calibration)
  let calListed = false; // the list was read once (then a calibration in progress is shown)
  let activeId = null; // the calibration shown in the panel; null: the start form
  let calBusy = false; // a request from the panel's controls is in flight
  let calSeq = 0; // bumped by every answer to a control: older poll answers do not overwrite it
  let activePolling = false;
  const FINAL = new Set(["done", "failed", "cancelled"]);
  const REC_FINAL = new Set(["closed", "failed"]);

  // The marker stream selector of the calibration panel's fields (the recordings panel uses it too).
  const MARKER_FIELDS = [
    ["type", "cal-marker-type"],
    ["name", "cal-marker-name"],
    ["source_id", "cal-marker-source-id"],
  ];
  function markerSelector() {
    const selector = {};
    for (const [key, id] of MARKER_FIELDS) {
      const value = document.getElementById(id).value.trim();
      if (value) selector[key] = value;
    }
    return selector;
  }

  function showCalError(message) {
    if (message) {
      setText(cal.error, message);
      cal.error.hidden = false;
    } else {
      cal.error.hidden = true;
      setText(cal.error, "");
    }
  }

  function classesOf(snapshot) {
    // The base model's classes, in its order: the keys of `trials` (every class, 0 when none yet).
    return Object.keys(snapshot.trials || {});
  }

  function remember(snapshot) {
    calibrations.set(snapshot.id, snapshot);
  }

  function redrawCardsOf(snapshot) {
    for (const sid of snapshot.streams || []) cards.get(sid)?.draw();
  }

  function renderCalibrationStreams() {
    const busy = new Map(); // stream id -> calibration collecting or fitting on it
    for (const c of calibrations.values()) {
      if (c.state === "collecting" || c.state === "fitting") for (const sid of c.streams) busy.set(sid, c);
    }
    const previous = new Map(
      [...cal.streamList.querySelectorAll("input")].map((input) => [input.value, input.checked])
    );
    const checkedModalities = new Set(
      streamInfos.filter((s) => previous.get(s.id)).map((s) => s.modality)
    );
    const rows = streamInfos.map((info) => {
      const label = document.createElement("label");
      label.className = "cal-stream";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "cal-stream";
      input.value = info.id;
      if (previous.has(info.id)) input.checked = previous.get(info.id);
      else if (!checkedModalities.has(info.modality) && !busy.has(info.id)) {
        // A new stream is preselected when no other stream of its modality is (one stream per modality).
        input.checked = true;
        checkedModalities.add(info.modality);
      }
      const model = info.model ? " · " + info.model.name + ":" + info.model.version : "";
      const other = busy.get(info.id);
      const note = document.createElement("span");
      note.className = "muted";
      note.textContent =
        " (" + info.modality + model + (info.connected ? "" : ", not connected") +
        (other ? ", in calibration " + other.id : "") + ")";
      label.append(input, document.createTextNode(info.id), note);
      return label;
    });
    const same =
      rows.length === cal.streamList.children.length &&
      rows.every((row, i) => row.textContent === cal.streamList.children[i].textContent);
    if (!same) cal.streamList.replaceChildren(...rows);
    cal.noStreams.hidden = streamInfos.length > 0;
  }

  function renderModelOptions(names) {
    const refs = new Set();
    for (const entry of names) {
      const [name, versions] = String(entry).split(":");
      refs.add(name);
      for (const v of (versions || "").split("/").filter(Boolean)) refs.add(name + ":" + v);
    }
    const options = [...refs].map((ref) => {
      const option = document.createElement("option");
      option.value = ref;
      return option;
    });
    if (options.map((o) => o.value).join("\n") !== [...cal.modelList.children].map((o) => o.value).join("\n")) {
      cal.modelList.replaceChildren(...options);
    }
  }

  function renderPicker() {
    const wanted = [["", "New calibration…"]];
    for (const c of calibrations.values()) wanted.push([c.id, c.participant + " · " + c.id + " · " + c.state]);
    const current = [...cal.select.options].map((o) => [o.value, o.textContent]);
    if (JSON.stringify(wanted) !== JSON.stringify(current)) {
      cal.select.replaceChildren(
        ...wanted.map(([value, text]) => {
          const option = document.createElement("option");
          option.value = value;
          option.textContent = text;
          return option;
        })
      );
    }
    cal.select.value = activeId ?? "";
  }

  function renderLabelButtons(snapshot) {
    const show = snapshot.labels === "rest" && snapshot.state === "collecting";
    cal.labelButtons.hidden = !show;
    if (!show) return;
    const classes = classesOf(snapshot);
    const key = snapshot.id + "|" + classes.join("|");
    if (cal.labelButtons.dataset.key !== key) {
      cal.labelButtons.dataset.key = key;
      const buttons = classes.map((name, i) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "cal-label";
        button.dataset.label = name;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = PALETTE[i % PALETTE.length];
        swatch.setAttribute("aria-hidden", "true");
        button.append(swatch, document.createTextNode(name));
        button.title = "Start a '" + name + "' trial now (ends the open one)";
        return button;
      });
      const end = document.createElement("button");
      end.type = "button";
      end.className = "cal-label cal-end";
      end.id = "cal-end-trial";
      end.dataset.label = "";
      end.textContent = "End trial";
      end.title = "End the open trial now";
      cal.labelButtons.replaceChildren(...buttons, end);
    }
    for (const button of cal.labelButtons.children) {
      const label = button.dataset.label;
      if (label) button.setAttribute("aria-pressed", String(snapshot.open_label === label));
      button.disabled = calBusy || (!label && !snapshot.open_label);
    }
  }

  function renderCounts(snapshot) {
    const classes = classesOf(snapshot);
    const modalities = Object.keys(snapshot.counts || {});
    const head = document.createElement("tr");
    const th = (text) => {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = text;
      return cell;
    };
    head.append(th("Class"), ...modalities.map((m) => th(m + " windows")), th("Trials"));
    const rows = classes.map((name) => {
      const row = document.createElement("tr");
      row.dataset.class = name;
      if (snapshot.open_label === name) row.className = "open";
      const first = document.createElement("th");
      first.scope = "row";
      first.textContent = name;
      row.appendChild(first);
      for (const m of modalities) {
        const cell = document.createElement("td");
        cell.dataset.modality = m;
        cell.textContent = String(snapshot.counts[m]?.[name] ?? 0);
        row.appendChild(cell);
      }
      const trials = document.createElement("td");
      trials.className = "trials";
      trials.textContent = String(snapshot.trials?.[name] ?? 0);
      row.appendChild(trials);
      return row;
    });
    cal.counts.tHead.replaceChildren(head);
    cal.counts.tBodies[0].replaceChildren(...rows);
  }

  function renderResult(snapshot) {
    const result = snapshot.result ?? fitResults.get(snapshot.id);
    cal.result.hidden = !result;
    if (!result) return;
    const v = result.validation || {};
    const nClasses = classesOf(snapshot).length;
    setText(document.getElementById("cal-result-model"), result.model.name + ":" + result.model.version);
    setText(
      document.getElementById("cal-result-accuracy"),
      pct(v.balanced_accuracy) + (nClasses ? " (chance " + pct(1 / nClasses) + ")" : "")
    );
    setText(
      document.getElementById("cal-result-trials"),
      Object.entries(v.n_trials || {})
        .map(([k, n]) => k + " " + n)
        .join(", ") || "–"
    );
    setText(
      document.getElementById("cal-result-activated"),
      result.activated?.length ? result.activated.join(", ") : "not activated"
    );
    setText(document.getElementById("cal-result-fit-s"), fmt(result.fit_s, 1, "s"));
    const rows = Object.entries(v.per_modality || {}).map(([modality, m]) => {
      const row = document.createElement("tr");
      row.dataset.modality = modality;
      const cells = [
        modality,
        m.head ?? "–",
        pct(m.balanced_accuracy),
        pct(m.own_head_balanced_accuracy),
        String(m.n_windows ?? "–"),
      ];
      cells.forEach((text, i) => {
        const cell = document.createElement(i ? "td" : "th");
        if (!i) cell.scope = "row";
        cell.textContent = text;
        if (i === 1) cell.className = "text";
        if (i === 2) cell.className = "accuracy";
        row.appendChild(cell);
      });
      return row;
    });
    document.querySelector("#cal-result-table tbody").replaceChildren(...rows);
  }

  function renderActive() {
    const snapshot = activeId === null ? null : calibrations.get(activeId);
    cal.start.hidden = Boolean(snapshot);
    cal.active.hidden = !snapshot;
    setText(cal.summary, snapshot ? snapshot.participant + " · " + snapshot.state : "");
    if (!snapshot) return;
    setText(document.getElementById("cal-id"), snapshot.id);
    const state = document.getElementById("cal-state");
    state.dataset.state = snapshot.state;
    setText(state, snapshot.state);
    setText(document.getElementById("cal-participant-shown"), snapshot.participant);
    setText(document.getElementById("cal-base"), snapshot.model.name + ":" + snapshot.model.version);
    setText(
      document.getElementById("cal-streams"),
      snapshot.streams.map((sid) => sid + " (" + (snapshot.modalities?.[sid] ?? "?") + ")").join(", ")
    );
    let labels = snapshot.labels === "rest" ? "buttons on this page" : "marker stream";
    if (snapshot.labels === "markers") {
      labels += snapshot.markers_connected ? " (connected)" : " (not connected)";
    }
    setText(document.getElementById("cal-labels"), labels);
    const open = document.getElementById("cal-open-label");
    open.dataset.label = snapshot.open_label ?? "";
    setText(open, snapshot.open_label ?? "none");
    renderCalibrationRecording(snapshot);
    const failure = document.getElementById("cal-failure");
    failure.hidden = !snapshot.error;
    setText(failure, snapshot.error ? "The fit failed: " + snapshot.error : "");

    renderLabelButtons(snapshot);
    renderCounts(snapshot);

    const notes = snapshot.notes || [];
    document.getElementById("cal-notes-box").hidden = notes.length === 0;
    setText(document.getElementById("cal-notes-count"), String(notes.length));
    const noteItems = notes.map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    });
    const notesList = document.getElementById("cal-notes");
    if (notesList.textContent !== noteItems.map((i) => i.textContent).join("")) {
      notesList.replaceChildren(...noteItems);
    }

    const collecting = snapshot.state === "collecting";
    cal.fit.hidden = !collecting && snapshot.state !== "fitting";
    const modalities = [...new Set(Object.values(snapshot.modalities || {}))];
    const wanted = ["", ...modalities];
    if ([...cal.trainModality.options].map((o) => o.value).join("|") !== wanted.join("|")) {
      const keep = cal.trainModality.value;
      cal.trainModality.replaceChildren(
        ...wanted.map((m) => {
          const option = document.createElement("option");
          option.value = m;
          option.textContent = m ? m + " (one head serves every modality)" : "each modality its own head";
          return option;
        })
      );
      cal.trainModality.value = wanted.includes(keep) ? keep : "";
    }
    cal.fitButton.disabled = calBusy || !collecting;
    setText(cal.fitButton, snapshot.state === "fitting" ? "Fitting…" : "Fit");
    renderResult(snapshot);

    cal.cancel.hidden = snapshot.state === "fitting";
    cal.cancel.disabled = calBusy;
    setText(cal.cancel, collecting ? "Cancel calibration" : "Forget calibration");
    setText(
      cal.cancel.nextElementSibling,
      collecting
        ? "cancelling discards the collected data; nothing is saved"
        : "removes it from the list; a model it saved stays in the repository"
    );
  }

  // "rec-… · recording · 12.3 kB" for a calibration created with "record": true.
  function renderCalibrationRecording(snapshot) {
    const el = document.getElementById("cal-recording");
    const recording = snapshot.recording_id ? recordings.get(snapshot.recording_id) : null;
    el.dataset.state = recording?.state ?? (snapshot.recording_id ? "unknown" : "");
    let text = "not recorded";
    if (recording) {
      text = recording.id + " · " + recording.state + " · " + formatBytes(recording.bytes) + " · " + recording.file;
      if (recording.error) text += " · " + recording.error;
    } else if (snapshot.recording_id) text = snapshot.recording_id;
    setText(el, text);
  }

  function selectCalibration(id) {
    activeId = id && calibrations.has(id) ? id : null;
    showCalError(null);
    renderPicker();
    renderActive();
    pollActive();
  }

  async function pollCalibrations() {
    if (calSupported === false) return;
    const seq = calSeq;
    try {
      const body = await apiRequest("GET", "calibrations");
      calSupported = true;
      cal.panel.hidden = false;
      const list = Array.isArray(body) ? body : body.data || [];
      const seen = new Set(list.map((c) => c.id));
      for (const c of list) if (seq === calSeq || c.id !== activeId) remember(c);
      for (const id of [...calibrations.keys()]) if (!seen.has(id)) calibrations.delete(id);
      if (!calListed) {
        calListed = true;
        const live = list.filter((c) => c.state === "collecting" || c.state === "fitting").pop();
        if (live && activeId === null) {
          activeId = live.id;
          cal.panel.open = true;
        }
      }
      if (activeId !== null && !calibrations.has(activeId)) activeId = null;
      renderPicker();
      renderActive();
      renderCalibrationStreams();
    } catch (err) {
      if (err.status === 404) {
        calSupported = false; // this service has no calibration routes: no panel
        cal.panel.hidden = true;
      }
      // Other errors (401, network) already show in the service panel via GET /streams.
    }
  }

  // The calibration in the panel, about once a second while the panel is open and it is not finished.
  async function pollActive() {
    if (activePolling || activeId === null || !cal.panel.open) return;
    const shown = calibrations.get(activeId);
    if (shown && FINAL.has(shown.state)) {
      pollCalibrationRecording(shown); // its recording closes once the calibration ends
      return;
    }
    const id = activeId;
    const seq = calSeq;
    activePolling = true;
    try {
      const snapshot = await apiRequest("GET", "calibrations/" + encodeURIComponent(id));
      if (seq === calSeq) {
        remember(snapshot);
        if (id === activeId) renderActive();
        redrawCardsOf(snapshot);
        pollCalibrationRecording(snapshot);
      }
    } catch (err) {
      if (err.status === 404 && id === activeId) {
        calibrations.delete(id);
        activeId = null;
        renderPicker();
        renderActive();
        showCalError(err.message);
      }
    } finally {
      activePolling = false;
    }
  }

  // The recording of a calibration ("record": true) until it is closed or failed: its state and bytes.
  let calRecordingPolling = false;
  async function pollCalibrationRecording(snapshot) {
    const id = snapshot.recording_id;
    if (!id || calRecordingPolling || REC_FINAL.has(recordings.get(id)?.state)) return;
    calRecordingPolling = true;
    try {
      recordings.set(id, await apiRequest("GET", "recordings/" + encodeURIComponent(id)));
      if (activeId === snapshot.id) renderActive();
    } catch (_) {
      // Shown as its id only; the recordings panel says more.
    } finally {
      calRecordingPolling = false;
    }
  }

  // Runs one control's request; its answer (a CalibrationPublic) becomes the shown state; errors show `detail`.
  async function calAction(run) {
    if (calBusy) return null;
    calBusy = true;
    renderActive();
    try {
      const answer = await run();
      showCalError(null);
      return answer;
    } catch (err) {
      showCalError(err.message);
      return null;
    } finally {
      calBusy = false;
      calSeq += 1;
      renderPicker();
      renderActive();
    }
  }

  cal.select.addEventListener("change", () => selectCalibration(cal.select.value || null));

  cal.panel.addEventListener("toggle", () => pollActive());

  for (const radio of document.querySelectorAll('input[name="cal-label-source"]')) {
    radio.addEventListener("change", () => {
      const source = document.querySelector('input[name="cal-label-source"]:checked').value;
      cal.markerSelector.disabled = source !== "markers";
    });
  }

  cal.start.addEventListener("submit", async (event) => {
    event.preventDefault();
    const streams = [...cal.streamList.querySelectorAll("input:checked")].map((input) => input.value);
    if (!streams.length) {
      showCalError("Choose at least one attached stream to calibrate on.");
      return;
    }
    const body = { participant: cal.participant.value.trim(), streams };
    if (cal.model.value.trim()) body.model = cal.model.value.trim();
    const source = document.querySelector('input[name="cal-label-source"]:checked').value;
    body.labels = source === "rest" ? { rest: true } : { markers: markerSelector() };
    if (cal.record.checked) body.record = true;
    cal.startButton.disabled = true;
    const snapshot = await calAction(() => apiRequest("POST", "calibrations", body));
    cal.startButton.disabled = false;
    if (snapshot) {
      remember(snapshot);
      activeId = snapshot.id;
      renderPicker();
      renderActive();
      renderCalibrationStreams();
      pollCalibrationRecording(snapshot);
      if (snapshot.recording_id) pollRecordings(true);
    }
  });

  cal.labelButtons.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button || activeId === null) return;
    const id = activeId;
    const label = button.dataset.label || null;
    let sent = 0;
    let received = 0;
    const snapshot = await calAction(async () => {
      sent = Date.now() / 1000;
      const answer = await apiRequest("POST", "calibrations/" + encodeURIComponent(id) + "/label", { label });
      received = Date.now() / 1000;
      return answer;
    });
    if (!snapshot) return;
    // The label was stamped with the service's LSL clock while the request was in flight.
    const last = (snapshot.events || [])[snapshot.events.length - 1];
    const stamp = last ? (label === null ? last.end : last.start) : null;
    if (Number.isFinite(stamp)) restLabelClock = (sent + received) / 2 - stamp;
    remember(snapshot);
    renderActive();
    redrawCardsOf(snapshot);
  });

  cal.fit.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (activeId === null) return;
    const id = activeId;
    const body = {};
    if (cal.trainModality.value) body.train_modality = cal.trainModality.value;
    if (cal.activate.checked) body.activate = true;
    const path = "calibrations/" + encodeURIComponent(id);
    const result = await calAction(async () => {
      // The windows of an open trial count only once it is closed: end it first.
      if (calibrations.get(id)?.labels === "rest" && calibrations.get(id)?.open_label) {
        remember(await apiRequest("POST", path + "/label", { label: null }));
      }
      return apiRequest("POST", path + "/fit", body);
    });
    try {
      remember(await apiRequest("GET", path));
    } catch (_) {
      // The next poll shows it.
    }
    if (result) fitResults.set(id, result);
    renderActive();
    if (result?.activated?.length) pollStreams(); // the streams now name the new model
  });

  cal.cancel.addEventListener("click", async () => {
    if (activeId === null) return;
    const id = activeId;
    const finished = FINAL.has(calibrations.get(id)?.state);
    const snapshot = await calAction(() => apiRequest("DELETE", "calibrations/" + encodeURIComponent(id)));
    if (!snapshot) return;
    if (finished) {
      calibrations.delete(id); // forgotten by the service
      activeId = null;
    } else remember(snapshot);
    renderPicker();
    renderActive();
    renderCalibrationStreams();
    redrawCardsOf(snapshot);
  });

  // ---------------------------------------------------------------- recordings panel

  const rec = {
    panel: document.getElementById("recordings"),
    summary: document.getElementById("rec-summary"),
    start: document.getElementById("rec-start"),
    startButton: document.getElementById("rec-start-button"),
    streamList: document.getElementById("rec-stream-list"),
    noStreams: document.getElementById("rec-no-streams"),
    withMarkers: document.getElementById("rec-with-markers"),
    markerSelector: document.getElementById("rec-marker-selector"),
    name: document.getElementById("rec-name"),
    error: document.getElementById("rec-error"),
    table: document.getElementById("rec-table"),
    none: document.getElementById("rec-none"),
  };
  let recSupported = null; // false once GET /recordings answers 404 (a service without recordings)
  let recBusy = false; // a request from the panel's controls is in flight
  let recSeq = 0; // bumped by every answer to a control: older poll answers do not overwrite it
  let recPolling = false;
  let stored = []; // the other XDF files of the folder (GET /recordings "stored")

  function showRecError(message) {
    setText(rec.error, message || "");
    rec.error.hidden = !message;
  }

  function recordingStreams() {
    const busy = new Map(); // stream id -> recording writing it
    for (const r of recordings.values()) {
      if (!REC_FINAL.has(r.state)) for (const s of r.streams) busy.set(s.stream_id, r);
    }
    return busy;
  }

  // Every attached stream as a checkbox, ticked unless another recording writes it.
  function renderRecordingStreams() {
    const busy = recordingStreams();
    const previous = new Map(
      [...rec.streamList.querySelectorAll("input")].map((input) => [input.value, input.checked])
    );
    const rows = streamInfos.map((info) => {
      const label = document.createElement("label");
      label.className = "cal-stream";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "rec-stream";
      input.value = info.id;
      const other = busy.get(info.id);
      input.checked = previous.has(info.id) ? previous.get(info.id) : !other;
      const note = document.createElement("span");
      note.className = "muted";
      note.textContent =
        " (" + info.modality + (info.connected ? "" : ", not connected") +
        (other ? ", recorded in " + other.id : "") + ")";
      label.append(input, document.createTextNode(info.id), note);
      return label;
    });
    const same =
      rows.length === rec.streamList.children.length &&
      rows.every((row, i) => row.textContent === rec.streamList.children[i].textContent);
    if (!same) rec.streamList.replaceChildren(...rows);
    rec.noStreams.hidden = streamInfos.length > 0;
  }

  function renderMarkerSelector() {
    const text = Object.entries(markerSelector())
      .map(([key, value]) => key + "=" + value)
      .join(",");
    setText(rec.markerSelector, text || "(none chosen)");
  }

  const REC_CELL_CLASSES = ["rec-file", "rec-state text", "rec-bytes", "rec-duration", "rec-samples text", "rec-markers"];

  function recordingCells(r) {
    const samples = r.streams.map((s) => s.stream_id + " " + s.n_samples).join(", ") || "–";
    const markers = r.markers ? r.markers.n_markers + (r.markers.connected ? "" : " (not connected)") : "–";
    return [r.file, r.state, formatBytes(r.bytes), fmt(r.duration_s, 1, "s"), samples, markers];
  }

  function renderRecordings() {
    const list = [...recordings.values()];
    const live = list.filter((r) => !REC_FINAL.has(r.state)).length;
    setText(rec.summary, live ? live + " recording" : list.length ? list.length + " ended" : "");
    rec.none.hidden = list.length > 0;
    rec.table.hidden = list.length === 0;
    const wanted = JSON.stringify([recBusy, list.map((r) => [r.id, r.error, ...recordingCells(r)])]);
    const body = rec.table.tBodies[0];
    if (body.dataset.shown !== wanted) {
      body.dataset.shown = wanted;
      const rows = [];
      for (const r of list) {
        const row = document.createElement("tr");
        row.dataset.recordingId = r.id;
        row.dataset.state = r.state;
        recordingCells(r).forEach((text, i) => {
          const cell = document.createElement(i ? "td" : "th");
          if (!i) cell.scope = "row";
          cell.textContent = text;
          cell.className = REC_CELL_CLASSES[i];
          row.appendChild(cell);
        });
        const actions = document.createElement("td");
        if (!REC_FINAL.has(r.state)) {
          const stop = document.createElement("button");
          stop.type = "button";
          stop.className = "danger rec-stop";
          stop.dataset.recordingId = r.id;
          stop.disabled = recBusy || r.state !== "recording";
          stop.textContent = "Stop";
          stop.title = "Close the recording; the file stays";
          actions.appendChild(stop);
        }
        row.appendChild(actions);
        rows.push(row);
        if (r.error) {
          const errorRow = document.createElement("tr");
          errorRow.className = "rec-error-row";
          errorRow.dataset.recordingId = r.id;
          const cell = document.createElement("td");
          cell.colSpan = 7;
          cell.className = "error text";
          cell.textContent = "Failed: " + r.error;
          errorRow.appendChild(cell);
          rows.push(errorRow);
        }
      }
      body.replaceChildren(...rows);
    }
    document.getElementById("rec-stored-box").hidden = stored.length === 0;
    setText(document.getElementById("rec-stored-count"), String(stored.length));
    const items = stored.map((f) => {
      const item = document.createElement("li");
      item.textContent = f.file + " · " + formatBytes(f.bytes) + (f.complete ? "" : " · incomplete");
      return item;
    });
    const storedList = document.getElementById("rec-stored");
    if (storedList.textContent !== items.map((i) => i.textContent).join("")) storedList.replaceChildren(...items);
    rec.startButton.disabled = recBusy;
  }

  // GET recordings every RECORDINGS_POLL_MS while the panel is open (once at start: is the panel offered?).
  async function pollRecordings(force) {
    if (recSupported === false || recPolling) return;
    if (recSupported && !rec.panel.open && !force) return;
    const seq = recSeq;
    recPolling = true;
    try {
      const body = await apiRequest("GET", "recordings");
      recSupported = true;
      rec.panel.hidden = false;
      if (seq === recSeq) {
        const list = body.recordings || [];
        const seen = new Set(list.map((r) => r.id));
        for (const id of [...recordings.keys()]) if (!seen.has(id)) recordings.delete(id);
        for (const r of list) recordings.set(r.id, r);
        stored = body.stored || [];
        renderRecordings();
        renderRecordingStreams();
        if (activeId !== null && calibrations.has(activeId)) renderActive();
      }
    } catch (err) {
      if (err.status === 404) {
        recSupported = false; // this service has no recording routes: no panel
        rec.panel.hidden = true;
      }
      // Other errors (401, network) already show in the service panel via GET /streams.
    } finally {
      recPolling = false;
    }
  }

  // Runs one control's request; its answer (a RecordingPublic) is kept; errors show the service's `detail`.
  async function recAction(run) {
    if (recBusy) return null;
    recBusy = true;
    renderRecordings();
    try {
      const answer = await run();
      showRecError(null);
      recordings.set(answer.id, answer);
      return answer;
    } catch (err) {
      showRecError(err.message);
      return null;
    } finally {
      recBusy = false;
      recSeq += 1;
      renderRecordings();
      renderRecordingStreams();
    }
  }

  rec.panel.addEventListener("toggle", () => {
    renderMarkerSelector();
    pollRecordings();
  });

  for (const [, id] of MARKER_FIELDS) document.getElementById(id).addEventListener("input", renderMarkerSelector);

  rec.start.addEventListener("submit", async (event) => {
    event.preventDefault();
    const streams = [...rec.streamList.querySelectorAll("input:checked")].map((input) => input.value);
    if (!streams.length) {
      showRecError("Choose at least one attached stream to record.");
      return;
    }
    const body = { streams };
    if (rec.withMarkers.checked) body.markers = markerSelector();
    if (rec.name.value.trim()) body.name = rec.name.value.trim();
    const answer = await recAction(() => apiRequest("POST", "recordings", body));
    if (answer) rec.name.value = "";
  });

  rec.table.addEventListener("click", async (event) => {
    const button = event.target.closest("button.rec-stop");
    if (!button) return;
    const id = button.dataset.recordingId;
    await recAction(() => apiRequest("DELETE", "recordings/" + encodeURIComponent(id)));
  });

  // ---------------------------------------------------------------- WebSocket with backoff

  const wsStatus = document.getElementById("ws-status");
  let socket = null;
  let attempts = 0;
  let reconnectTimer = null;

  function setWsStatus(state, text) {
    wsStatus.dataset.state = state;
    document.body.dataset.ws = state;
    setText(wsStatus.querySelector(".ws-text"), text);
  }

  function wsUrl() {
    const url = apiUrl("ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (token) url.searchParams.set("token", token);
    return url.toString();
  }

  function connect() {
    reconnectTimer = null;
    setWsStatus("connecting", attempts ? "reconnecting…" : "connecting…");
    try {
      socket = new WebSocket(wsUrl());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    socket.addEventListener("open", () => {
      attempts = 0;
      setWsStatus("open", "live");
    });
    socket.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_) {
        return; // not ours; ignore rather than break the page
      }
      if (msg.type === "state" && msg.state) {
        const id = msg.state.stream_id ?? "(no stream)";
        cardFor(id).onState(msg.state);
      } else if (msg.type === "dropped" && Number.isFinite(msg.count)) {
        droppedTotal += msg.count;
        const el = document.getElementById("dropped-count");
        el.dataset.count = String(droppedTotal);
        setText(el, String(droppedTotal));
      }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      scheduleReconnect(event.code);
    });
    // 'error' is always followed by 'close', which schedules the reconnect.
  }

  function scheduleReconnect(code) {
    if (reconnectTimer !== null) return;
    attempts += 1;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (attempts - 1));
    const delay = base * (0.75 + 0.5 * Math.random()); // jitter: many dashboards do not reconnect in lockstep
    const why = code === 1008 || code === 4401 || code === 4403 ? " (not authorised: use ?token=)" : "";
    setWsStatus("closed", "offline, retry in " + (delay / 1000).toFixed(1) + " s" + why);
    wsStatus.dataset.attempts = String(attempts);
    reconnectTimer = window.setTimeout(connect, delay);
  }

  // ---------------------------------------------------------------- start

  updateStreamsCount();
  connect();
  pollStreams();
  pollReady();
  pollCalibrations();
  renderMarkerSelector();
  pollRecordings();
  window.setInterval(pollStreams, STREAMS_POLL_MS);
  window.setInterval(pollCalibrations, STREAMS_POLL_MS);
  window.setInterval(pollActive, CALIBRATION_POLL_MS);
  window.setInterval(pollRecordings, RECORDINGS_POLL_MS);
  window.setInterval(pollReady, READY_POLL_MS);
  window.setInterval(() => {
    for (const card of cards.values()) card.draw();
  }, REDRAW_MS);
})();
