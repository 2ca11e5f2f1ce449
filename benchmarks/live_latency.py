"""Live-path latency and stream capacity: LSL outlets (62 ch @ 200 Hz) -> m2s-serve -> WebSocket client.

For each load level (number of concurrent EEG streams) the script starts, as separate processes,

- a **load generator**: N real LSL outlets on loopback, 62 EEG channels in microvolts at 200 Hz,
  each pushing chunks of ``--chunk`` samples in real time with exact sample timestamps; stream
  phases are random (independent amplifiers) or ``--phase aligned`` (worst case: every stream
  completes its window in the same instant). It records when each chunk was pushed.
- the **service**: ``m2s-serve`` with a benchmark bundle (the committed demo bundle's EEG graph
  with SEED's 1-s DE window and a 1-s hop, so each stream yields one EmotionState per second),
  the N streams attached through ``POST /streams``.

and in this process a WebSocket client on ``/ws`` that stamps every EmotionState on arrival.

Latency of a state = arrival time at the client - the time the chunk holding the last sample of
its window was pushed (both ``pylsl.local_clock()``, one monotonic clock across processes). The
same run measures the **baseline**, the floor any LSL consumer pays: a bare pylsl reader process
(one thread per stream, blocking ``pull_chunk``) on the same outlets, latency from push to pull of
the same window-end samples. Server CPU is read from ``/proc/<pid>/stat`` (Linux only).

Target (issue 10): >= 100 streams with p99 <= 50 ms on a 2-core machine. The last line is
``streams=<max streams meeting the target> p99_ms=<p99 at that load>``.

Usage: python benchmarks/live_latency.py [--streams 1,10,50,100] [--duration 20] [--phase random]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pylsl
import websockets

from models.bundle import load_manifest, write_manifest
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE

N_CHANNELS, SFREQ = 62, 200.0
BENCH_MODEL = "m2s-bench-1s"
TARGET_P99_MS = 50.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------- benchmark bundle


def make_bench_repository(root: Path) -> tuple[str, ...]:
    """Copy the demo bundle's EEG graph into ``root`` with a 1-s window, 1-s hop DE spec; return its channels."""
    source = DEFAULT_REPOSITORY / DEMO_BUNDLE
    version = max(int(p.name) for p in source.iterdir() if p.name.isdigit())
    manifest = load_manifest(source / str(version))
    graph = manifest.graphs["eeg"]
    spec = graph.feature_spec.model_copy(update={"window_s": 1.0, "hop_s": 1.0})
    graph = graph.model_copy(update={"feature_spec": spec, "spacing_s": 1.0})
    folder = root / BENCH_MODEL / "1"
    folder.mkdir(parents=True)
    for name in (graph.model_file, graph.embedding_file):
        shutil.copy2(source / str(version) / name, folder / name)
    sha = {k: v for k, v in manifest.sha256.items() if k in (graph.model_file, graph.embedding_file)}
    data = manifest.model_dump(mode="json")
    # Only the EEG graph's files are copied: no full-network weights either.
    data.update(
        name=BENCH_MODEL,
        version=1,
        graphs={"eeg": graph.model_dump(mode="json")},
        sha256=sha,
        weights_file=None,
    )
    write_manifest(folder, type(manifest).model_validate(data))
    return tuple(spec.channels)


# ----------------------------------------------------------------------------------- load generator


def source_id(run: str, i: int) -> str:
    """The ``source_id`` of stream ``i`` of benchmark run ``run``."""
    return f"m2s-bench-{run}-{i:03d}"


def pin_threads(pid: int, cpus) -> None:
    """Pin every thread of process ``pid`` to ``cpus`` (threads it starts later inherit the set).

    ``os.sched_setaffinity(pid, ...)`` sets one thread's mask only; threads that exist already (liblsl's,
    OpenBLAS's) are pinned one by one through ``/proc/<pid>/task``.
    """
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


def _make_outlets(run: str, indices, channels, chunk: int) -> list[pylsl.StreamOutlet]:
    outlets = []
    for i in indices:
        info = pylsl.StreamInfo(
            f"bench-eeg-{i:03d}", "EEG", N_CHANNELS, SFREQ, pylsl.cf_float32, source_id(run, i)
        )
        node = info.desc().append_child("channels")
        for label in channels:
            ch = node.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "microvolts")
            ch.append_child_value("type", "EEG")
        outlets.append(pylsl.StreamOutlet(info, chunk_size=chunk, max_buffered=60))
    return outlets


def generator_main(
    run: str, n: int, channels, chunk: int, phase: str, seed: int, conn, indices=None, cpus=None
) -> None:
    """Load-generator process: push N streams in real time until told to stop; send back the push log.

    ``indices`` (default: all ``n``) are the streams this process serves, when several generator
    processes share the load; ``cpus``, if given, is the set of cores the whole process is pinned to.
    The push log per served stream (in ``indices`` order) is two arrays: the timestamp of each
    chunk's last sample and the ``local_clock()`` right after ``push_chunk`` returned.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through the pipe
    if cpus is not None:
        pin_threads(os.getpid(), cpus)
    indices = list(range(n)) if indices is None else list(indices)
    m = len(indices)
    rng = np.random.default_rng(seed)
    outlets = _make_outlets(run, indices, channels, chunk)
    loop_samples = int(10 * SFREQ)  # 10 s of noise per stream, looped (~20 uV, like scalp EEG)
    data = [rng.normal(0.0, 20.0, (loop_samples, N_CHANNELS)).astype(np.float32) for _ in range(m)]
    period = chunk / SFREQ
    start = pylsl.local_clock() + 0.5
    offsets = np.zeros(m) if phase == "aligned" else rng.uniform(0, 1.0, m)  # a window is 1 s
    # heap of (due time = timestamp of the chunk's last sample, stream, first sample index)
    heap = [(start + offsets[i] + (chunk - 1) / SFREQ, i, 0) for i in range(m)]
    heapq.heapify(heap)
    log_ts = [[] for _ in range(m)]
    log_push = [[] for _ in range(m)]
    lag = []
    conn.send("started")
    while not conn.poll():
        due, i, k = heap[0]
        wait = due - pylsl.local_clock()
        if wait > 0:
            if conn.poll(min(wait, 0.05)):
                break
            continue
        heapq.heapreplace(heap, (due + period, i, k + chunk))
        j = k % loop_samples
        block = data[i][j : j + chunk] if j + chunk <= loop_samples else np.roll(data[i], -j, axis=0)[:chunk]
        outlets[i].push_chunk(block, timestamp=due)
        pushed = pylsl.local_clock()
        log_ts[i].append(due)
        log_push[i].append(pushed)
        lag.append(pushed - due)
    conn.recv()
    conn.send(
        {
            "indices": indices,
            "ts": [np.asarray(x) for x in log_ts],
            "push": [np.asarray(x) for x in log_push],
            "lag": np.asarray(lag),
        }
    )
    del outlets


class LoadGenerator:
    """``shards`` generator processes serving ``n`` streams between them (stream ``i`` in shard ``i % shards``).

    Use as a context manager: entering starts the processes and waits until every outlet exists;
    :meth:`stop` ends them and returns the merged push log (``ts``, ``push`` per stream index,
    ``lag`` of every push).
    """

    def __init__(
        self, ctx, run: str, n: int, channels, chunk: int, phase: str, seed: int, shards=1, cpus=None
    ):
        self._procs, self._conns = [], []
        self._args = (ctx, run, n, channels, chunk, phase, seed, shards, cpus)
        self.log = None

    def __enter__(self) -> LoadGenerator:
        ctx, run, n, channels, chunk, phase, seed, shards, cpus = self._args
        for s in range(shards):
            conn, child = ctx.Pipe()
            # One shard keeps live_latency's original arguments (and so its seed and phases).
            indices = None if shards == 1 else list(range(s, n, shards))
            proc = ctx.Process(
                target=generator_main,
                args=(run, n, channels, chunk, phase, seed + s, child, indices, cpus),
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)
            self._conns.append(conn)
        for conn in self._conns:
            conn.recv()
        return self

    def stop(self) -> dict:
        """Stop every shard; return the merged push log."""
        if self.log is None:
            n = self._args[2]
            for conn in self._conns:
                conn.send("stop")
            parts = [conn.recv() for conn in self._conns]
            ts, push = [None] * n, [None] * n
            for part in parts:
                for k, i in enumerate(part["indices"]):
                    ts[i], push[i] = part["ts"][k], part["push"][k]
            self.log = {"ts": ts, "push": push, "lag": np.concatenate([p["lag"] for p in parts])}
        return self.log

    def __exit__(self, *exc) -> None:
        try:
            if self.log is None and exc[0] is None:
                self.stop()
            elif self.log is None:
                for conn in self._conns:
                    conn.send("stop")
        finally:
            for proc in self._procs:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()


# ----------------------------------------------------------------------------------- baseline reader


def reader_main(run: str, n: int, duration: float, conn) -> None:
    """Baseline process: a bare pylsl inlet per stream (one thread each, blocking pulls); log pull times."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs: list[list[tuple[np.ndarray, float]]] = [[] for _ in range(n)]
    stop = threading.Event()

    def read(i: int) -> None:
        infos = pylsl.resolve_byprop("source_id", source_id(run, i), minimum=1, timeout=10.0)
        inlet = pylsl.StreamInlet(infos[0], max_buflen=30, processing_flags=pylsl.proc_clocksync)
        inlet.open_stream(timeout=10.0)
        buffer = np.empty((int(SFREQ), N_CHANNELS), dtype=np.float32)
        while not stop.is_set():
            _, ts = inlet.pull_chunk(timeout=0.2, max_samples=len(buffer), min_samples=1, dest_obj=buffer)
            if ts:
                logs[i].append((np.asarray(ts), pylsl.local_clock()))
        inlet.close_stream()

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    conn.send("started")
    time.sleep(1.0)  # connection set-up; pulls before this are not counted
    counted_from = pylsl.local_clock()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join(5)
    conn.send([[(ts, t) for ts, t in log if t >= counted_from] for log in logs])


# ----------------------------------------------------------------------------------- measurement


@dataclass
class Level:
    """What one load level measured."""

    streams: int
    states: int
    expected: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: float  # of one core
    service_p50_ms: float  # chunk handed over by the LSL worker -> state published (the state's timing)
    service_p99_ms: float
    inference_p99_ms: float
    base_p50_ms: float
    base_p99_ms: float
    push_lag_p99_ms: float

    @property
    def complete(self) -> bool:
        return self.states >= 0.98 * self.expected

    @property
    def meets_target(self) -> bool:
        return self.complete and self.p99_ms <= TARGET_P99_MS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads) in seconds, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


async def collect_states(
    url: str, seconds: float, warmup: float
) -> list[tuple[str, float, float, float, float, float]]:
    """(stream_id, window lsl_time, arrival local_clock, inference ms, in-service ms, delivery ms) of every state
    after ``warmup`` s; delivery = arrival - the state's ``wall_time`` (its publication), both ``time.time()``."""
    out: list[tuple[str, float, float, float, float, float]] = []
    async with websockets.connect(url, max_queue=None) as ws:
        t_start = time.monotonic()
        while True:
            left = t_start + warmup + seconds - time.monotonic()
            if left <= 0:
                break
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=left)
            except TimeoutError:
                break
            arrived, arrived_wall = pylsl.local_clock(), time.time()
            message = json.loads(text)
            if message.get("type") != "state" or time.monotonic() - t_start < warmup:
                continue
            state = message["state"]
            timing = state["timing"]
            out.append(
                (
                    state["stream_id"],
                    state["lsl_time"],
                    arrived,
                    timing["inference_ms"],
                    timing["total_ms"],
                    1e3 * (arrived_wall - state["wall_time"]),
                )
            )
    return out


class BenchService:
    """``m2s-serve`` as a process on the benchmark repository, its log in a file; a context manager.

    ``env`` is added to this process's environment (after ``M2S_MAX_STREAMS=10000``: the default
    limit of 64 attached streams would refuse the larger levels with 409); ``preexec_fn`` runs in
    the child before ``exec`` (e.g. to pin it to cores). Leaving the block stops the server
    (SIGTERM) and prints the first ERROR line or traceback it logged, if any.
    """

    def __init__(self, repo: Path, *, env: dict[str, str] | None = None, preexec_fn=None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self._cmd = [
            str(Path(sys.executable).parent / "m2s-serve"),
            "--repository",
            str(repo),
            "--model",
            BENCH_MODEL,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self._env = {**os.environ, "M2S_MAX_STREAMS": "10000", **(env or {})}
        self._preexec_fn = preexec_fn

    def __enter__(self) -> BenchService:
        # The server's log goes to a file: an unread pipe fills up and blocks every thread that logs.
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            self._cmd,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
            env=self._env,
            preexec_fn=self._preexec_fn,
        )
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def start_streams(self, run: str, n: int) -> dict[str, int]:
        """Wait until ready, attach streams ``0..n-1`` of ``run`` and wait until each emitted; stream id -> index."""
        # Generous timeouts: attaching hundreds of streams on 2 busy cores takes a while.
        with httpx.Client(base_url=self.url, timeout=60.0) as http:
            deadline = time.monotonic() + 60
            while True:
                if self.process.poll() is not None:
                    self._log.seek(0)
                    raise RuntimeError(f"m2s-serve exited: {self._log.read()[-2000:]}")
                try:
                    if http.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("m2s-serve was not ready within 60 s")
                time.sleep(0.2)
            ids = {}
            for i in range(n):
                r = http.post("/streams", json={"modality": "eeg", "source_id": source_id(run, i)})
                r.raise_for_status()
                ids[r.json()["id"]] = i
            # Warm-up: every stream connected and emitting (5 windows of 1 s + 1 s DE window).
            deadline = time.monotonic() + 60 + n * 0.2
            while True:
                streams = http.get("/streams").json()["data"]
                if all(s["n_states"] > 0 for s in streams):
                    break
                if time.monotonic() > deadline:
                    errors = {s["id"]: s["last_error"] for s in streams if s["n_states"] == 0}
                    raise RuntimeError(f"streams never emitted: {list(errors.items())[:3]}")
                time.sleep(0.5)
        return ids

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.seek(0)
        problems = [line for line in self._log if " ERROR " in line or "Traceback" in line]
        self._log.close()
        if problems:
            print(
                f"  (m2s-serve logged {len(problems)} error(s); first: {problems[0].strip()[:200]})",
                flush=True,
            )


def window_latencies(received, ids: dict[str, int], log: dict) -> np.ndarray:
    """Seconds from the push of the chunk holding each state's window end to the state's arrival."""
    latencies = []
    for stream_id, lsl_time, arrived, *_ in received:
        i = ids[stream_id]
        k = int(np.searchsorted(log["ts"][i], lsl_time - 1e-3))
        if k < len(log["ts"][i]):
            latencies.append(arrived - log["push"][i][k])
    return np.asarray(latencies)


def run_level(n: int, args, channels, repo: Path, run: str) -> Level:
    """Measure one load level: generator + service + WebSocket client, then the bare-reader baseline."""
    ctx = mp.get_context("spawn")
    with LoadGenerator(ctx, run, n, channels, args.chunk, args.phase, args.seed) as generator:
        received, ids, cpu, reads = _measure(n, args, repo, run, ctx)
        log = generator.stop()
    return _summarise(n, args, received, ids, cpu, reads, log)


def _measure(n: int, args, repo: Path, run: str, ctx):
    """Service + WebSocket client on the running outlets, then the bare-reader baseline."""
    with BenchService(repo) as server:
        ids = server.start_streams(run, n)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        received = asyncio.run(collect_states(server.ws_url, args.duration, warmup=1.0))
        cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)

    # Baseline on the same outlets: a bare pylsl reader.
    reader_conn, reader_child = ctx.Pipe()
    reader = ctx.Process(target=reader_main, args=(run, n, args.baseline_duration, reader_child), daemon=True)
    reader.start()
    reader_conn.recv()
    reads = reader_conn.recv()
    reader.join(10)
    return received, ids, cpu, reads


def _summarise(n: int, args, received, ids, cpu: float, reads, log) -> Level:
    """Latencies of the states and of the baseline from the push log."""
    latencies = window_latencies(received, ids, log)
    # Baseline: the same window-end samples (one per second per stream, on the stream's 1-s grid).
    base = []
    for i, pulls in enumerate(reads):
        ts_log, push_log = log["ts"][i], log["push"][i]
        grid0 = ts_log[0] - (args.chunk - 1) / SFREQ  # first sample's timestamp
        for ts, pulled in pulls:
            phase = np.round((ts - grid0) * SFREQ + 1) % SFREQ  # 0 at every 1-s window end
            ends = ts[phase == 0]
            for t in ends:
                k = int(np.searchsorted(ts_log, t - 1e-3))
                if k < len(ts_log):
                    base.append(pulled - push_log[k])
    lat = 1e3 * np.asarray(latencies)
    base_ms = 1e3 * np.asarray(base) if base else np.array([np.nan])
    return Level(
        streams=n,
        states=len(lat),
        expected=int(n * args.duration),
        p50_ms=float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        p99_ms=float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        max_ms=float(lat.max()) if len(lat) else float("nan"),
        cpu_percent=100 * cpu,
        service_p50_ms=float(np.percentile([r[4] for r in received], 50)) if received else float("nan"),
        service_p99_ms=float(np.percentile([r[4] for r in received], 99)) if received else float("nan"),
        inference_p99_ms=float(np.percentile([r[3] for r in received], 99)) if received else float("nan"),
        base_p50_ms=float(np.percentile(base_ms, 50)),
        base_p99_ms=float(np.percentile(base_ms, 99)),
        push_lag_p99_ms=1e3 * float(np.percentile(log["lag"], 99)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,10,50,100", help="load levels, comma-separated stream counts")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per level")
    parser.add_argument(
        "--baseline-duration", type=float, default=5.0, help="seconds of the bare-reader baseline"
    )
    parser.add_argument(
        "--chunk", type=int, default=10, help="samples per pushed chunk (10 = 50 ms at 200 Hz)"
    )
    parser.add_argument("--phase", choices=("random", "aligned"), default="random", help="stream phases")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        levels = sorted({int(x) for x in args.streams.split(",")})
    except ValueError:
        parser.error(f"--streams must be comma-separated integers, got {args.streams!r}")
    if not levels or min(levels) < 1:
        parser.error("--streams needs stream counts >= 1")
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads server CPU from /proc (Linux only)")

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, pylsl {pylsl.__version__}"
    )
    print(
        f"load: {N_CHANNELS} ch @ {SFREQ:g} Hz float32 per stream, chunks of {args.chunk} samples, {args.phase} phases; "
        f"model {BENCH_MODEL} (demo EEG graph, T=5 x 310, 1-s DE window, 1-s hop); {args.duration:g} s per level"
    )
    run = f"{os.getpid()}"
    # liblsl's INFO lines from the child processes would bury the table.
    lsl_cfg = Path(tempfile.gettempdir()) / f"m2s-bench-lsl-{run}.cfg"
    lsl_cfg.write_text("[log]\nlevel = -2\n")
    os.environ.setdefault("LSLAPICFG", str(lsl_cfg))
    results = []
    with tempfile.TemporaryDirectory(prefix="m2s-bench-") as tmp:
        repo = Path(tmp) / "repository"
        channels = make_bench_repository(repo)
        header = (
            f"{'streams':>7} {'states':>7} {'expected':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'CPU %':>6} {'svc p50':>8} {'svc p99':>8} {'inf p99':>8} {'LSL p50':>8} {'LSL p99':>8} {'gen lag':>8}  target"
        )
        print(header)
        for n in levels:
            try:
                level = run_level(n, args, channels, repo, f"{run}-{n}")
            except (RuntimeError, httpx.HTTPError, OSError) as err:  # report the level, go on with the next
                print(f"{n:>7}  level failed: {type(err).__name__}: {err}", flush=True)
                continue
            results.append(level)
            print(
                f"{level.streams:>7} {level.states:>7} {level.expected:>8} {level.p50_ms:>8.2f} {level.p99_ms:>8.2f} "
                f"{level.max_ms:>8.2f} {level.cpu_percent:>6.1f} {level.service_p50_ms:>8.2f} {level.service_p99_ms:>8.2f} "
                f"{level.inference_p99_ms:>8.2f} {level.base_p50_ms:>8.2f} {level.base_p99_ms:>8.2f} "
                f"{level.push_lag_p99_ms:>8.2f}  {'MET' if level.meets_target else 'NOT MET'}",
                flush=True,
            )
    print("latency: push of the chunk holding a window's last sample -> EmotionState at the WebSocket client")
    print(
        "CPU %: server process, % of one core; svc: inside the service (chunk pulled -> state published); inf: ONNX run"
    )
    print(
        "LSL p50/p99: baseline, push -> bare pylsl pull of the same samples (no service); gen lag: generator p99 push delay"
    )
    if not results:
        print("streams=0 p99_ms=nan")
        return
    ok = [lv for lv in results if lv.meets_target]
    best = max(ok, key=lambda lv: lv.streams) if ok else None
    if best is None:
        print(f"streams=0 p99_ms={results[0].p99_ms:.2f}")
    else:
        print(f"streams={best.streams} p99_ms={best.p99_ms:.2f}")


if __name__ == "__main__":
    main()
