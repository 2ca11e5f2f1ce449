"""Soak: the live service for ``--minutes`` (30) under a repeating, seeded schedule of faults and load events.

Real parts only, on loopback: ``m2s-serve`` as its own process (:class:`clients.service_process.ServiceProcess`;
a temporary copy of the demo repository, so hot reload can add versions, and a temporary calibrated
repository; model poll every second), the LSL simulator (:class:`clients.simulator.Simulator`: EEG 62 ch @
200 Hz, gaze @ 120 Hz, ECG @ 256 Hz of unseen subject 0, 20-s trials with ground-truth markers; speed 1),
``websockets`` clients and ``httpx`` REST clients. Streams attached over REST to the same outlets: ``main``
(EEG, eye, ECG) follows ``m2s-synthetic-demo``; ``cal`` (one EEG
stream) is calibrated live again and again; ``--load-streams`` (60) extra ECG streams on the same outlet
follow ``m2s-synthetic-demo`` too and raise the state rate. Every stream emits one state per 2-s hop.

After a fault-free warm-up (40 s) a cycle of 150 s repeats until the end (each start jittered by up to
±3 s, the lengths drawn, all from ``--seed``):

======  ===============  =================================================================================
 +10 s  ``pause``        2-4 s without samples, outlets up (simulator fault)
 +32 s  ``rest_burst``   15 s of 8 concurrent ``POST /predict`` workers plus ``GET /v2/models``
 +58 s  ``dropout``      3-5 s: every data outlet destroyed, then recreated with the same source_id
 +85 s  ``swap``         even cycles: a new version of ``m2s-synthetic-demo`` is renamed into the repository
                         (hot reload switches ``main`` and the load streams); odd cycles: ``calibration``,
                         ``POST /calibrations/{id}/fit`` with ``activate`` on the marker-labelled calibration
                         of ``cal`` (a new version of ``m2s-synthetic-demo-soak``), then a new calibration
+100 s  ``nan``          1.5-3 s of NaN EEG and ECG samples (gaze unaffected)
======  ===============  =================================================================================

All the time: a fast WebSocket client reads every state (``/ws``); a slow one (4-kB receive buffer, no
pings of its own) reads nothing for ``--slow-stall-s`` (18) s, then drains what it can in up to 3 s, and
again, so the service's queue for it overflows and drops its oldest states (it reconnects if the service
closes it); a light REST poller (``GET /streams``, ``/metrics``, ``/v2/health/ready`` every second).
Every 2 s the service process's RSS, thread count, open descriptors and CPU time are read from
``/proc/<pid>``.

Why a stall and 64 streams (the default ``M2S_MAX_STREAMS``): a client that stops reading holds up the
TCP stream, the service's keepalive ping (uvicorn's default: every 20 s, 20-s timeout) waits behind the
unread states, and the service closes the connection. Before the per-client queue (256 states) can
overflow, the socket buffers take about 200 more (~0.5 kB each), so drop-oldest engages only if those
~450 states arrive within one stall that the keepalive tolerates: here 32 states/s for 18 s.

Measured:

- **states lost outside fault windows**, per stream: after a stream's first state and after its first
  state following each fault of its modality (``pause``, ``dropout``; ``nan`` for EEG and ECG), every hop
  until the next such fault (or the end) must bring a state: expected from the hop and the time,
  against those the fast client received. ``swap``, ``calibration``, ``rest_burst`` and the slow client
  are *not* fault windows: no state may be missed across them. States whose context overlaps a fault
  window (the service must never predict across a gap) are counted too.
- **recovery** of every fault and stream: fault end → arrival of the first state after it. A gap restarts
  the model's window, so the first state needs a full context of fresh data (EEG 10 s, ECG 12 s, eye
  18 s: the feature window plus ``(T - 1)`` × spacing); the service's part is the excess over that
  context, which the goal reads. For ``swap``: publication → first state of the new version, per stream;
  for ``calibration``: fit request → first state of the calibrated version.
- **RSS slope** after the warm-up (``--warmup-min``, capped at half the run), least squares, MB/hour;
  threads and open descriptors min/max; the slow client's drops (its ``dropped`` notices and the service's
  ``m2s_ws_dropped_messages_total``); REST errors and latencies; state latency during REST bursts vs
  otherwise.

Goals (issue 18, reported, never asserted): 0 states lost outside fault windows, RSS slope ≈ 0 after
warm-up (read here as below 5 MB/h), every fault recovered in < 5 s. Last line:
``lost= rss_slope_mb_h= threads= recovery_max_s= dropped_slow= ...``.

Usage: python benchmarks/soak.py [--minutes 30] [--seed 0] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pylsl
import websockets

from clients.service_process import ServiceProcess
from clients.simulator import NAN_MODALITIES, Fault, Simulator
from models.bundle import load_manifest
from models.calibrated import publish_next_version
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
from synthetic import SyntheticConfig

HOP_S = 2.0  # every graph of the demo bundle: 2-s hop, T = 5 vectors 2 s apart
CONTEXT_S = {"eeg": 10.0, "eye": 18.0, "ecg": 12.0}  # feature window + (T - 1) * spacing
MODALITIES = ("eeg", "eye", "ecg")
WARMUP_S = 40.0  # fault-free start: attach, first states (eye: 18 s of data)
CYCLE_S = 150.0
TAIL_S = 25.0  # a fault must end this long before the run does (the eye's context + slack)
GAP_FAULTS = ("pause", "dropout", "nan")  # simulator faults: a timestamp gap or NaN samples
BURST_WORKERS = 8
SAMPLE_EVERY_S = 2.0
PARTICIPANT = "soak"
RSS_GOAL_MB_H = 5.0
RECOVERY_GOAL_S = 5.0


@dataclass
class Event:
    """One scheduled fault or load event; ``at_s`` in playback seconds (= seconds since the simulator started)."""

    kind: str
    at_s: float
    duration_s: float
    cycle: int
    result: dict = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s


def make_schedule(total_s: float, seed: int) -> list[Event]:
    """The seeded, repeating schedule (module docstring): cycles of CYCLE_S after WARMUP_S, cut at the end."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    cycle, t0 = 0, WARMUP_S
    while t0 < total_s:
        swap = "swap" if cycle % 2 == 0 else "calibration"
        for kind, offset, length in (
            ("pause", 10.0, (2.0, 4.0)),
            ("rest_burst", 32.0, (15.0, 15.0)),
            ("dropout", 58.0, (3.0, 5.0)),
            (swap, 85.0, (0.0, 0.0)),
            ("nan", 100.0, (1.5, 3.0)),
        ):
            at = t0 + offset + rng.uniform(-3.0, 3.0)
            duration = float(rng.uniform(*length))
            if at + duration + TAIL_S <= total_s:
                events.append(Event(kind, round(at, 2), round(duration, 2), cycle))
        cycle, t0 = cycle + 1, t0 + CYCLE_S
    return events


# ----------------------------------------------------------------------------------- service probes


def proc_sample(pid: int) -> dict:
    """RSS (MB), threads and open descriptors of ``pid``, and the RSS of its direct children, from ``/proc``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    children_rss = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                with contextlib.suppress(OSError, AttributeError):
                    text = Path(f"/proc/{child}/status").read_text()
                    children_rss += int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
    return {"rss_mb": rss, "threads": threads, "fds": fds, "cpu_s": cpu_s, "children_rss_mb": children_rss}


def metric(text: str, name: str) -> float:
    """Sum of a Prometheus metric's samples (all label sets) in an exposition ``text``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def publish_version(repo: Path, staging: Path) -> int:
    """Copy version 1 of the demo bundle (hard links; a fresh manifest) into place as its next version."""
    home = repo / DEMO_BUNDLE
    source = home / "1"
    folder = Path(tempfile.mkdtemp(prefix="next-", dir=staging))
    for f in source.iterdir():
        if f.name != "manifest.json":  # written anew: a link would overwrite version 1's
            os.link(f, folder / f.name)
    manifest = load_manifest(source)
    _, published = publish_next_version(folder, home, lambda v: manifest.model_copy(update={"version": v}))
    return published.version


# ----------------------------------------------------------------------------------- the run


class Soak:
    def __init__(self, args, server: ServiceProcess, sim: Simulator, repo: Path, events: list[Event]):
        self.args, self.server, self.sim, self.repo, self.events = args, server, sim, repo, events
        self.ws_url = server.url.replace("http", "ws", 1) + "/ws"
        self.states: list[tuple[float, dict]] = []  # (arrival, local_clock; state) at the fast client
        self.fast_dropped = 0
        self.slow = {"states": 0, "dropped_notices": 0, "dropped": 0, "closes": []}
        self.samples: list[dict] = []
        self.rest: dict[str, list] = {"light": [], "burst": []}  # (latency s, ok)
        self.streams: dict[str, dict] = {}  # id -> {"set", "modality"}
        self.calibration_id: str | None = None
        self.stop = asyncio.Event()
        self.t_end_lsl: float | None = None

    # -- setup

    async def attach(self, http: httpx.AsyncClient) -> None:
        ids = self.sim.source_ids
        plan = [("main", m) for m in MODALITIES] + [("cal", "eeg")]
        plan += [("load", self.args.load_modality)] * self.args.load_streams
        for set_name, modality in plan:
            r = await http.post("/streams", json={"modality": modality, "source_id": ids[modality]})
            r.raise_for_status()
            self.streams[r.json()["id"]] = {"set": set_name, "modality": modality}
        await self.new_calibration(http)

    async def new_calibration(self, http: httpx.AsyncClient) -> None:
        cal = [sid for sid, s in self.streams.items() if s["set"] == "cal"]
        body = {"participant": PARTICIPANT, "model": DEMO_BUNDLE, "streams": cal,
                "labels": {"markers": {"source_id": self.sim.source_ids["markers"]}}}  # fmt: skip
        r = await http.post("/calibrations", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"POST /calibrations: {r.status_code} {r.text}")
        self.calibration_id = r.json()["id"]

    # -- clients

    async def fast_client(self) -> None:
        async with websockets.connect(self.ws_url, max_size=None) as ws:
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "state":
                    self.states.append((pylsl.local_clock(), msg["state"]))
                elif msg.get("type") == "dropped":
                    self.fast_dropped += msg["count"]

    async def slow_client(self) -> None:
        """Stall ``--slow-stall-s``, drain, repeat; reconnect when the service closes the connection."""
        host = self.server.url.split("//")[1].split(":")[0]
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
            sock.connect((host, self.server.port))
            t_open = time.monotonic()
            try:
                # no client pings: a pong would wait behind the unread states, as any reply would
                async with websockets.connect(
                    self.ws_url, sock=sock, max_queue=4, max_size=None, ping_interval=None
                ) as ws:
                    while True:
                        await asyncio.sleep(self.args.slow_stall_s)  # reads nothing: the service queues
                        t_drain = time.monotonic() + 3.0
                        while time.monotonic() < t_drain:  # then drains what it can in up to 3 s
                            try:
                                msg = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                            except asyncio.TimeoutError:
                                break
                            if msg.get("type") == "state":
                                self.slow["states"] += 1
                            elif msg.get("type") == "dropped":
                                self.slow["dropped_notices"] += 1
                                self.slow["dropped"] += msg["count"]
            except websockets.ConnectionClosed as err:
                rcvd = err.rcvd
                self.slow["closes"].append({"after_s": round(time.monotonic() - t_open, 1),
                                            "code": rcvd.code if rcvd else None,
                                            "reason": rcvd.reason if rcvd else str(err)})  # fmt: skip

    async def sampler(self, http: httpx.AsyncClient) -> None:
        pid, t0 = self.server.process.pid, time.monotonic()
        while True:
            row = {"t_s": time.monotonic() - t0, **proc_sample(pid)}
            t1 = time.monotonic()
            try:
                text = (await http.get("/metrics")).text
                row["ws_dropped_total"] = metric(text, "m2s_ws_dropped_messages_total")
                self.rest["light"].append((time.monotonic() - t1, True))
            except httpx.HTTPError:
                self.rest["light"].append((time.monotonic() - t1, False))
            row["states_received"] = len(self.states)
            self.samples.append(row)
            await asyncio.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - t0) % SAMPLE_EVERY_S))

    async def light_rest(self, http: httpx.AsyncClient) -> None:
        while True:
            for path in ("/streams", "/v2/health/ready"):
                t1 = time.monotonic()
                try:
                    ok = (await http.get(path)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.rest["light"].append((time.monotonic() - t1, ok))
            await asyncio.sleep(1.0)

    # -- scheduled events

    async def wait_until(self, at_s: float) -> None:
        delay = self.sim.start_time + at_s - pylsl.local_clock()
        if delay > 0:
            await asyncio.sleep(delay)

    async def scheduler(self, http: httpx.AsyncClient) -> None:
        staging = self.repo.parent / "staging"
        staging.mkdir(exist_ok=True)
        for ev in sorted(self.events, key=lambda e: e.at_s):
            if ev.kind in GAP_FAULTS:
                continue  # the simulator plays those
            await self.wait_until(ev.at_s)
            ev.result["t_lsl"] = pylsl.local_clock()
            if ev.kind == "rest_burst":
                await self.rest_burst(ev)
            elif ev.kind == "swap":
                try:
                    ev.result["version"] = await asyncio.to_thread(publish_version, self.repo, staging)
                except Exception as err:  # reported, the soak goes on
                    ev.result["error"] = repr(err)
            elif ev.kind == "calibration":
                try:
                    await self.calibrate(http, ev)
                except Exception as err:  # reported, the soak goes on
                    ev.result["error"] = repr(err)

    async def rest_burst(self, ev: Event) -> None:
        t_end = time.monotonic() + ev.duration_s
        body = {"modality": "eeg", "features": np.zeros((5, 310)).tolist()}
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30.0) as http:

            async def worker(k: int) -> None:
                n = 0
                while time.monotonic() < t_end:
                    t1 = time.monotonic()
                    try:
                        if n % 4 == 3:
                            ok = (await http.get("/v2/models")).status_code == 200
                        else:
                            ok = (await http.post("/predict", json=body)).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.rest["burst"].append((time.monotonic() - t1, ok))
                    n += 1

            await asyncio.gather(*(worker(k) for k in range(BURST_WORKERS)))

    async def calibrate(self, http: httpx.AsyncClient, ev: Event) -> None:
        t1 = time.monotonic()
        r = await http.post(f"/calibrations/{self.calibration_id}/fit", json={"activate": True}, timeout=120)
        ev.result["request_s"] = time.monotonic() - t1
        if r.status_code != 200:
            ev.result["error"] = f"{r.status_code} {r.text[:300]}"
        else:
            fit = r.json()
            ev.result.update(version=fit["model"]["version"], name=fit["model"]["name"],
                             fit_s=fit.get("fit_s"), activated=fit.get("activated"))  # fmt: skip
        try:
            await self.new_calibration(http)
        except Exception as err:
            ev.result["new_calibration_error"] = repr(err)

    # -- main

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30.0) as http:
            tasks = [asyncio.create_task(self.fast_client()), asyncio.create_task(self.sampler(http))]
            await asyncio.sleep(0.5)  # the fast client subscribes before any stream exists
            await self.attach(http)
            tasks += [asyncio.create_task(c) for c in (self.slow_client(), self.light_rest(http),
                                                       self.scheduler(http))]  # fmt: skip
            end_s, printed = self.args.minutes * 60, 0
            while pylsl.local_clock() < self.sim.start_time + end_s:
                await asyncio.sleep(1.0)
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise RuntimeError(f"a soak task failed: {t.exception()!r}") from t.exception()
                if self.sim.error is not None:
                    raise RuntimeError(f"the simulator failed: {self.sim.error}")
                minute = int((pylsl.local_clock() - self.sim.start_time) // 60)
                if self.args.progress and minute > printed:
                    printed = minute
                    rss = self.samples[-1]["rss_mb"] if self.samples else float("nan")
                    print(f"  {minute} min: {len(self.states)} states, RSS {rss:.1f} MB", flush=True)  # noqa: T201
            self.t_end_lsl = pylsl.local_clock()
            r = await http.get("/streams")
            self.service_streams = {s["id"]: s for s in r.json()["data"]}
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# ----------------------------------------------------------------------------------- analysis


def fault_windows(events: list[Event], modality: str, t0: float) -> list[tuple[float, float, Event]]:
    """LSL-time windows of the gap faults that hit ``modality`` (``nan`` leaves gaze alone)."""
    out = []
    for ev in events:
        if ev.kind in ("pause", "dropout") or (ev.kind == "nan" and modality in NAN_MODALITIES):
            out.append((t0 + ev.at_s, t0 + ev.end_s, ev))
    return sorted(out, key=lambda w: w[0])


def analyse_stream(states: list[tuple[float, dict]], modality: str, windows, t_end: float) -> dict:
    """Loss, duplicates, states across faults and recoveries of one stream (module docstring)."""
    ctx = CONTEXT_S[modality]
    times = sorted(s["lsl_time"] for _, s in states)
    unique = sorted(set(round(t, 4) for t in times))
    arrival = {}
    for a, s in sorted(states, key=lambda x: x[0]):
        arrival.setdefault(round(s["lsl_time"], 4), a)
    spanning = sum(1 for t in unique for fs, fe, _ in windows if t - ctx < fe - 0.02 and t > fs + 0.02)
    recoveries = []
    anchors = [unique[0]] if unique else []
    for i, (_fs, fe, ev) in enumerate(windows):
        nxt = windows[i + 1][0] if i + 1 < len(windows) else t_end
        after = [t for t in unique if t > fe]
        if not after or after[0] >= nxt:
            recoveries.append({"kind": ev.kind, "cycle": ev.cycle, "recovered": False})
            continue
        first = after[0]
        raw = arrival[first] - fe
        recoveries.append({"kind": ev.kind, "cycle": ev.cycle, "recovered": True, "raw_s": raw,
                           "excess_s": raw - ctx, "segment_start_delay_s": first - ctx - fe})  # fmt: skip
        anchors.append(first)
    expected = received = 0
    starts = [fs for fs, _, _ in windows]
    for a in anchors:
        end = min([fs for fs in starts if fs > a] + [t_end])
        n_exp = int(math.floor((end - a - 1e-3) / HOP_S)) + 1
        expected += n_exp
        received += sum(1 for t in unique if a - 1e-3 <= t < a + n_exp * HOP_S - HOP_S / 2)
    return {"expected": expected, "received": received, "lost": expected - received,
            "duplicates": len(times) - len(unique), "spanning_fault": spanning, "recoveries": recoveries}  # fmt: skip


def lsq_slope(t_s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y against t (per hour) and its standard error."""
    if len(t_s) < 3:
        return float("nan"), float("nan")
    th = t_s / 3600.0
    a = np.vstack([th, np.ones_like(th)]).T
    coef, res, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ coef
    se = math.sqrt(resid @ resid / (len(y) - 2) / np.sum((th - th.mean()) ** 2))
    return float(coef[0]), se


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def report(soak: Soak, args, wall_s: float) -> dict:
    t0 = soak.sim.start_time
    by_stream: dict[str, list] = {sid: [] for sid in soak.streams}
    for a, s in soak.states:
        by_stream.setdefault(s["stream_id"], []).append((a, s))
    t_end = soak.t_end_lsl - 1.0  # a state due later may still be on its way
    streams = {}
    for sid, info in soak.streams.items():
        m = info["modality"]
        res = analyse_stream(by_stream[sid], m, fault_windows(soak.events, m, t0), t_end)
        svc = soak.service_streams.get(sid, {})
        res.update(info, service_n_states=svc.get("n_states"), fast_client_states=len(by_stream[sid]),
                   n_reconnects=svc.get("n_reconnects"), model=svc.get("model"))  # fmt: skip
        streams[sid] = res

    # swap / calibration: time to the first state of the new version, per switched stream
    for ev in soak.events:
        if ev.kind not in ("swap", "calibration") or "version" not in ev.result:
            continue
        name = DEMO_BUNDLE if ev.kind == "swap" else ev.result["name"]
        firsts = {}
        for a, s in soak.states:
            if a >= ev.result["t_lsl"] and s["model"] == {"name": name, "version": ev.result["version"]}:
                firsts.setdefault(s["stream_id"], a - ev.result["t_lsl"])
        ev.result["switched"] = len(firsts)
        ev.result["switch_s_max"] = max(firsts.values()) if firsts else None

    samples = soak.samples
    t = np.array([r["t_s"] for r in samples])
    rss = np.array([r["rss_mb"] for r in samples])
    warm = min(args.warmup_min * 60, args.minutes * 30)
    keep = t >= warm
    slope, se = lsq_slope(t[keep], rss[keep])
    threads = [r["threads"] for r in samples]
    threads_after = [r["threads"] for r in samples if r["t_s"] >= warm]
    fds_after = [r["fds"] for r in samples if r["t_s"] >= warm]
    burst_times = [(t0 + e.at_s, t0 + e.end_s) for e in soak.events if e.kind == "rest_burst"]
    lat_burst, lat_other = [], []
    for _, s in soak.states:
        if s.get("latency_ms") is not None:
            inside = any(a <= s["lsl_time"] <= b for a, b in burst_times)
            (lat_burst if inside else lat_other).append(s["latency_ms"])
    recs = [(sid, r) for sid, res in streams.items() for r in res["recoveries"]]
    excess = [r["excess_s"] for _, r in recs if r["recovered"]]
    switch = [e.result.get("switch_s_max") for e in soak.events if e.kind in ("swap", "calibration")]
    switch = [s for s in switch if s is not None]
    dropped_metric = samples[-1].get("ws_dropped_total", float("nan")) if samples else float("nan")
    out = {
        "args": vars(args),
        "wall_s": wall_s,
        "events": [asdict(e) for e in soak.events],
        "streams": streams,
        "samples": samples,
        "rss": {
            "slope_mb_per_h": slope,
            "slope_se": se,
            "warmup_s": warm,
            "start_mb": float(rss[0]),
            "after_warmup_mb": float(rss[keep][0]) if keep.any() else None,
            "end_mb": float(rss[-1]),
            "max_mb": float(rss.max()),
        },  # fmt: skip
        "threads": {
            "min": min(threads),
            "max": max(threads),
            "min_after_warmup": min(threads_after),
            "max_after_warmup": max(threads_after),
            "end": threads[-1],
        },  # fmt: skip
        "fds": {
            "min_after_warmup": min(fds_after),
            "max_after_warmup": max(fds_after),
            "end": samples[-1]["fds"],
        },
        "ws": {"fast_dropped": soak.fast_dropped, "slow": soak.slow, "dropped_metric": dropped_metric},
        "rest": {
            k: {
                "n": len(v),
                "errors": sum(1 for _, ok in v if not ok),
                "p50_ms": 1e3 * pct([x for x, _ in v], 50),
                "p99_ms": 1e3 * pct([x for x, _ in v], 99),
            }
            for k, v in soak.rest.items()
        },  # fmt: skip
        "state_latency_ms": {
            "burst_p99": pct(lat_burst, 99),
            "other_p99": pct(lat_other, 99),
            "burst_n": len(lat_burst),
            "other_n": len(lat_other),
        },  # fmt: skip
        "cpu_pct": 100
        * (samples[-1]["cpu_s"] - samples[0]["cpu_s"])
        / (samples[-1]["t_s"] - samples[0]["t_s"]),
        "lost": sum(r["lost"] for r in streams.values()),
        "recovery_excess_max_s": max(excess) if excess else float("nan"),
        "not_recovered": sum(1 for _, r in recs if not r["recovered"]),
        "switch_max_s": max(switch) if switch else float("nan"),
    }
    return out


def print_report(out: dict, soak: Soak) -> None:
    p = print
    a = out["args"]
    p(f"soak: {a['minutes']:g} min, seed {a['seed']}, {len(soak.streams)} streams "  # noqa: T201
      f"({a['load_streams']} load {a['load_modality']}), wall {out['wall_s'] / 60:.1f} min")  # fmt: skip
    kinds = {}
    for e in soak.events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    p("events: " + ", ".join(f"{k} x{n}" for k, n in kinds.items()))  # noqa: T201
    p(f"\n{'stream':<22} {'set':<5} {'mod':<4} {'expected':>8} {'received':>8} {'lost':>5} {'dup':>4} "  # noqa: T201
      f"{'x-fault':>7} {'svc n':>6} {'client':>6} {'reconn':>6}  model")  # fmt: skip
    rows = [(sid, r) for sid, r in out["streams"].items() if r["set"] != "load"]
    load = [r for r in out["streams"].values() if r["set"] == "load"]
    if load:
        total = {k: sum(r[k] or 0 for r in load) for k in ("expected", "received", "lost", "duplicates",
                                                            "spanning_fault", "service_n_states", "fast_client_states",
                                                            "n_reconnects")}  # fmt: skip
        models = sorted(
            {f"{(r['model'] or {}).get('name')}:{(r['model'] or {}).get('version')}" for r in load}
        )
        rows.append((f"{len(load)} streams (sum)", {**total, "set": "load", "modality": load[0]["modality"],
                                                    "model": {"name": ",".join(models), "version": ""}}))  # fmt: skip
    for sid, r in rows:
        model = r["model"] or {}
        p(f"{sid:<22} {r['set']:<5} {r['modality']:<4} {r['expected']:>8} {r['received']:>8} {r['lost']:>5} "  # noqa: T201
          f"{r['duplicates']:>4} {r['spanning_fault']:>7} {r['service_n_states'] or 0:>6} "
          f"{r['fast_client_states']:>6} {r['n_reconnects'] or 0:>6}  {model.get('name')}:{model.get('version')}".rstrip(":"))  # fmt: skip
    p("\nrecovery (fault end -> first state; excess = beyond the context the model needs), per fault:")  # noqa: T201
    p(
        f"{'at s':>7} {'kind':<8} {'len s':>5}  "
        + "  ".join(f"{m + ' raw/excess':>16}" for m in MODALITIES)  # noqa: T201
        + "  (max over the fault's streams)"
    )
    for ev in soak.events:
        if ev.kind not in GAP_FAULTS:
            continue
        cells = []
        for m in MODALITIES:
            rs = [r for res in out["streams"].values() if res["modality"] == m for r in res["recoveries"]
                  if r["kind"] == ev.kind and r["cycle"] == ev.cycle]  # fmt: skip
            if not rs:
                cells.append(f"{'-':>16}")
            elif not all(r["recovered"] for r in rs):
                cells.append(f"{'NOT RECOVERED':>16}")
            else:
                cells.append(f"{max(r['raw_s'] for r in rs):7.2f}/{max(r['excess_s'] for r in rs):<8.2f}")
        p(f"{ev.at_s:7.1f} {ev.kind:<8} {ev.duration_s:5.2f}  " + "  ".join(cells))  # noqa: T201
    p("\nswaps and calibrations (publication or fit request -> first state of the new version):")  # noqa: T201
    for ev in soak.events:
        if ev.kind in ("swap", "calibration"):
            r = ev.result
            if "error" in r:
                p(f"{ev.at_s:7.1f} {ev.kind:<11} ERROR {r['error']}")  # noqa: T201
                continue
            extra = f" fit request {r['request_s']:.2f} s" if ev.kind == "calibration" else ""
            sw = r.get("switch_s_max")
            p(f"{ev.at_s:7.1f} {ev.kind:<11} -> version {r.get('version')}: {r.get('switched')} stream(s) "  # noqa: T201
              f"switched, slowest {sw if sw is None else f'{sw:.2f}'} s{extra}")  # fmt: skip
    rss, th, fds, ws = out["rss"], out["threads"], out["fds"], out["ws"]
    p(
        f"\nRSS: start {rss['start_mb']:.1f} MB, after warm-up ({rss['warmup_s'] / 60:.1f} min) "  # noqa: T201
        f"{rss['after_warmup_mb']:.1f}, end {rss['end_mb']:.1f}, max {rss['max_mb']:.1f}; slope after warm-up "
        f"{rss['slope_mb_per_h']:+.2f} ± {rss['slope_se']:.2f} MB/h (least squares, {len(out['samples'])} samples)"
    )
    cpu = out["cpu_pct"]
    p(
        f"service CPU: {cpu:.1f} % of one core on average (the run's two cores are shared with the simulator and clients)"
    )  # noqa: T201
    p(
        f"threads: {th['min']}..{th['max']} (after warm-up {th['min_after_warmup']}..{th['max_after_warmup']}, "  # noqa: T201
        f"end {th['end']}); open fds after warm-up {fds['min_after_warmup']}..{fds['max_after_warmup']}"
    )
    p(
        f"WebSocket: fast client dropped {ws['fast_dropped']}; slow client got {ws['slow']['states']} states, "  # noqa: T201
        f"{ws['slow']['dropped_notices']} dropped notices for {ws['slow']['dropped']} states, closed by the service "
        f"{len(ws['slow']['closes'])} time(s) {ws['slow']['closes'][:3]}; service metric "
        f"m2s_ws_dropped_messages_total {ws['dropped_metric']:.0f}"
    )
    for k, r in out["rest"].items():
        p(
            f"REST {k}: {r['n']} requests, {r['errors']} errors, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
        )  # noqa: T201
    lat = out["state_latency_ms"]
    p(
        f"state latency p99: during REST bursts {lat['burst_p99']:.1f} ms ({lat['burst_n']}), "  # noqa: T201
        f"otherwise {lat['other_p99']:.1f} ms ({lat['other_n']})"
    )
    goals = {
        "lost": out["lost"] == 0 and all(r["spanning_fault"] == 0 for r in out["streams"].values()),
        "rss": abs(rss["slope_mb_per_h"]) < RSS_GOAL_MB_H,
        "recovery": out["not_recovered"] == 0
        and out["recovery_excess_max_s"] < RECOVERY_GOAL_S
        and not out["switch_max_s"] >= RECOVERY_GOAL_S,
        "drop_oldest": ws["dropped_metric"] > 0 and ws["fast_dropped"] == 0,
    }
    p("goals: " + ", ".join(f"{k} {'MET' if v else 'NOT met'}" for k, v in goals.items()))  # noqa: T201
    p(
        f"lost={out['lost']} rss_slope_mb_h={rss['slope_mb_per_h']:+.2f} threads={th['min_after_warmup']}-"  # noqa: T201
        f"{th['max_after_warmup']} recovery_max_s={out['recovery_excess_max_s']:.2f} "
        f"not_recovered={out['not_recovered']} switch_max_s={out['switch_max_s']:.2f} "
        f"dropped_slow={ws['slow']['dropped']} dropped_metric={ws['dropped_metric']:.0f} "
        f"fast_dropped={ws['fast_dropped']} rest_errors={sum(r['errors'] for r in out['rest'].values())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="run length (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="schedule seed (default 0)")
    parser.add_argument(
        "--out", type=Path, help="write the results (JSON) and the time series (.csv beside it)"
    )
    parser.add_argument("--load-streams", type=int, default=60, help="extra streams (default 60)")
    parser.add_argument(
        "--load-modality", default="ecg", choices=MODALITIES, help="their modality (default ecg)"
    )
    parser.add_argument(
        "--slow-stall-s", type=float, default=18.0, help="slow client: s without reading (default 18)"
    )
    parser.add_argument(
        "--warmup-min", type=float, default=5.0, help="RSS slope from here (default 5, ≤ half)"
    )
    parser.add_argument("--progress", action="store_true", help="print a line every minute")
    args = parser.parse_args()
    total_s = args.minutes * 60
    events = make_schedule(total_s, args.seed)
    faults = [Fault(e.kind, e.at_s, e.duration_s) for e in events if e.kind in GAP_FAULTS]
    work = Path(tempfile.mkdtemp(prefix="m2s-soak-"))
    repo = work / "repository"
    shutil.copytree(DEFAULT_REPOSITORY / DEMO_BUNDLE / "1", repo / DEMO_BUNDLE / "1")
    sim = Simulator(
        SyntheticConfig(trial_duration_s=20.0), subject=0, modalities=MODALITIES, speed=1.0,
        duration_s=total_s + 5.0, faults=faults, source_id_prefix=f"soak{os.getpid()}",
    )  # fmt: skip
    options = ["--log-level", "warning", "--repository", repo, "--calibrated-repository", work / "calibrated",
               "--recordings-dir", work / "recordings", "--model-poll-interval", "1"]  # fmt: skip
    t_wall = time.monotonic()
    try:
        with ServiceProcess(options) as server, sim:
            soak = Soak(args, server, sim, repo, events)
            asyncio.run(soak.run())
            log = server.log()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = report(soak, args, time.monotonic() - t_wall)
    out["service_log_errors"] = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
    out["service_log_warnings"] = sum(1 for line in log.splitlines() if " WARNING " in line)
    if args.out:  # before printing: a long run's figures are kept even if the report fails
        args.out.write_text(json.dumps(out, indent=1, default=str))
        keys = list(out["samples"][0])
        lines = [",".join(keys)] + [",".join(f"{r.get(k, '')}" for k in keys) for r in out["samples"]]
        args.out.with_suffix(".csv").write_text("\n".join(lines) + "\n")
    print_report(out, soak)
    errors = out["service_log_errors"]
    print(f"service log: {out['service_log_warnings']} WARNING line(s), {len(errors)} ERROR/Traceback line(s)"  # noqa: T201
          + (f", first: {errors[0][:300]}" if errors else ""))  # fmt: skip


if __name__ == "__main__":
    main()
