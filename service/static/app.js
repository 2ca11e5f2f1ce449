// M2S-live dashboard: live class probabilities per attached stream, stream health and model info.
//
// Data sources (all relative to the page, so the dashboard also works behind a path prefix):
//   WebSocket ws        {"type": "state", "state": EmotionState} and {"type": "dropped", "count": n}
//   GET streams         {"data": [StreamPublic], "count": n}, polled every STREAMS_POLL_MS
//   GET v2/health/ready readiness and the execution providers in use, polled every READY_POLL_MS
//   GET v2/models/{name} model metadata, fetched once per model name
// A `?token=...` in the page URL is passed to the WebSocket as `?token=` and to REST as a bearer header.
// No framework, no build step, no CDN: lab machines are often offline.
"use strict";

(function () {
  const WINDOW_S = 120; // plotted history
  const GAP_S = 5; // points further apart than this are not joined (no line across a data gap)
  const STREAMS_POLL_MS = 3000;
  const READY_POLL_MS = 10000;
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

  function fmt(value, digits, unit) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    return value.toFixed(digits) + (unit ? " " + unit : "");
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
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
  window.setInterval(pollStreams, STREAMS_POLL_MS);
  window.setInterval(pollReady, READY_POLL_MS);
  window.setInterval(() => {
    for (const card of cards.values()) card.draw();
  }, REDRAW_MS);
})();
