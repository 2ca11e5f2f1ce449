"""Service capacity with the service isolated on its own cores, against the floor measured in the same run.

``live_latency.py`` runs the load generator, ``m2s-serve`` and the WebSocket client on the same
cores, so its highest levels measure the machine. Here the cores are split:

- **service cores** (``--service-cpus``, default ``0``): ``m2s-serve`` and every process it starts
  (``M2S_WORKERS``'s workers inherit the set), pinned before ``exec``; later the floor process.
- **load cores** (``--load-cpus``, default: every other core): this script, the WebSocket client
  and the load-generator processes (N real LSL outlets, 62 ch EEG in microvolts @ 200 Hz, chunks of
  ``--chunk`` samples in real time, random or ``--phase aligned`` phases).

Per level (worker count, N streams), on the same running outlets and one after the other:

1. **the service**: ``m2s-serve`` with the ``live_latency.py`` bench bundle (the demo EEG graph with
   a 1-s DE window and a 1-s hop: one EmotionState per stream per second), the N streams attached
   over REST; once every stream emitted, ``--duration`` seconds measured: latency from the push of
   the chunk holding a window's last sample to the state's arrival at the WebSocket client (both
   ``pylsl.local_clock()``), states received against one per stream per second, and the CPU time
   (utime + stime from ``/proc``) of the service process **and all its descendants**.
2. **the floor**: one process pinned to the service cores doing only the irreducible work for the
   same N streams: N pylsl inlets with the service's processing flags, one thread that once per hop
   (1 s) pulls every inlet's available samples, feeds them to the stream's feature pipeline from the
   bundle manifest exactly as ``service/streams.py`` does (samples x channels -> channels x samples
   float64, rows in the spec's order, unit factors, ``pipeline.push``) and runs one ONNX Runtime
   ``session.run`` per window with the service's session options. Its CPU is read the same way over
   ``--floor-duration`` seconds. No dejitter (the generator's timestamps are exact), no state, no
   REST, no WebSocket: what is left is what any consumer of these streams pays.

CPU per stream-second = CPU seconds / (streams x seconds); ``ratio = service / floor``.

Target (issue 19): p99 <= 20 ms with >= 98 % of the states. A level is **invalid** when the
generator's push lag p99 exceeds 5 ms (the load side did not keep up, so the level says nothing
about the service). Levels stop after two that fail. The last line is
``streams=<most streams meeting the target with 1 worker> p99_ms=<its p99> cpu_per_stream_ratio=<its ratio>``
(``streams=0`` and the smallest level's figures when none met it).

Usage: python benchmarks/capacity.py [--streams 50,100,200,250,300] [--duration 15] [--workers 1,2]
       [--service-cpus 0] [--load-cpus 1] [--generators 0] [--allow-shared]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # live_latency, when imported from elsewhere

from live_latency import (  # noqa: E402
    BENCH_MODEL,
    N_CHANNELS,
    SFREQ,
    BenchService,
    LoadGenerator,
    collect_states,
    cpu_seconds,
    make_bench_repository,
    pin_threads,
    source_id,
    window_latencies,
)

TARGET_P99_MS = 20.0
MAX_PUSH_LAG_MS = 5.0  # generator push lag p99 above this: the level is invalid
HOP_S = 1.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------- CPU of a process tree


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants (from the parent pid in every ``/proc/<pid>/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def tree_cpu_seconds(pid: int) -> tuple[float, int]:
    """CPU seconds of ``pid``, its reaped children and its living descendants; and how many processes live.

    utime + stime of every process in the tree (each covers all its threads), plus cutime + cstime
    of ``pid`` (descendants that ended and were waited for).
    """
    total, alive = 0.0, 0
    for p in process_tree(pid):
        try:
            total += cpu_seconds(p)
            alive += 1
            if p == pid:
                fields = _stat_fields(p)
                total += (int(fields[13]) + int(fields[14])) / _CLK_TCK
        except OSError:
            continue
    return total, alive


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id of process ``pid`` (``/proc/<pid>/task/*/stat``).

    By id, not by name: Python threads carry no native name here, so every thread but libuv's reads
    ``m2s-serve``; the spread (one busy thread, or many a little) is what tells where the time goes.
    """
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def thread_affinities(pid: int) -> list[set[int]]:
    """The allowed cores of every thread of ``pid`` and its descendants (``sched_getaffinity`` per thread id)."""
    out = []
    for p in process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                out.append(os.sched_getaffinity(int(task.name)))
            except OSError:
                continue
    return out


def pin_tree(pid: int, cpus, repin: bool = True) -> int:
    """Pin every thread of ``pid`` and its descendants to ``cpus``; return how many were allowed elsewhere.

    Needed after start-up: ONNX Runtime pins its intra-op threads to cores of its own choosing
    (one per core of the machine), which takes them off the set the process inherited. With
    ``repin=False`` only count them.
    """
    escaped = sum(not a <= set(cpus) for a in thread_affinities(pid))
    for p in process_tree(pid) if repin else ():
        try:
            pin_threads(p, cpus)
        except OSError:
            continue
    return escaped


# ----------------------------------------------------------------------------------- the floor


def floor_main(run: str, n: int, manifest_folder: str, cpus, repin: bool, conn) -> None:
    """Floor process: N inlets, one thread, one pull per stream per hop -> pipeline -> one session.run per window.

    Sends ``("ready", allowed cores of its threads, threads re-pinned)`` once every stream produced a
    window, then counts the windows inferred and the hops until told to stop and sends
    ``(windows, hops)``: one window per stream per hop is the full load.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_threads(os.getpid(), cpus)  # before ORT and liblsl start their threads
    import onnxruntime as ort

    from models.bundle import load_manifest
    from service.engine import INPUT_NAME, OUTPUT_NAME, session_options
    from service.lsl.resolve import read_stream_info
    from signals.channels import map_channels
    from signals.units import channel_factors

    folder = Path(manifest_folder)
    graph = load_manifest(folder).graphs["eeg"]
    spec = graph.feature_spec
    session = ort.InferenceSession(
        str(folder / graph.model_file), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((1, graph.seq_len, graph.dim), np.float32)})

    prefix = source_id(run, 0)[:-3]
    found = pylsl.resolve_bypred(f"starts-with(source_id,'{prefix}')", minimum=n, timeout=60.0)
    by_id = {info.source_id(): info for info in found}
    missing = [i for i in range(n) if source_id(run, i) not in by_id]
    if missing:
        raise RuntimeError(f"floor: {len(missing)} streams not found, e.g. {source_id(run, missing[0])}")

    def connect(i: int):
        inlet = pylsl.StreamInlet(
            by_id[source_id(run, i)],
            max_buflen=30,
            recover=False,
            processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize,
        )
        info = read_stream_info(inlet.info(timeout=10.0))
        inlet.open_stream(timeout=10.0)
        inlet.time_correction(timeout=10.0)
        rows = map_channels(info.channels, spec.channels)
        factors = channel_factors([info.units[r] for r in rows], spec)
        return inlet, rows, (None if np.all(factors == 1.0) else factors[:, np.newaxis])

    with ThreadPoolExecutor(8) as pool:  # set-up only; the measured loop is one thread
        streams = list(pool.map(connect, range(n)))
    pipelines = [graph.feature_pipeline(live=True) for _ in range(n)]
    escaped = pin_tree(os.getpid(), cpus, repin)  # ORT pinned its intra-op threads elsewhere
    buffer = np.empty((int(30 * SFREQ), N_CHANNELS), dtype=np.float32)
    seen = np.zeros(n, dtype=bool)
    windows = hops = 0
    counting = False
    next_hop = pylsl.local_clock()
    while True:
        next_hop += HOP_S
        if conn.poll(max(0.0, next_hop - pylsl.local_clock())):
            conn.recv()
            break
        for i, (inlet, rows, factors) in enumerate(streams):
            while True:
                _, timestamps = inlet.pull_chunk(
                    timeout=0.0, max_samples=len(buffer), dest_obj=buffer, as_numpy=True
                )
                k = len(timestamps)
                if k == 0:
                    break
                data = np.array(buffer[:k].T, dtype=np.float64, order="C")  # (n_channels, k), as the service
                x = data[rows]
                if factors is not None:
                    x = x * factors
                for window in pipelines[i].push(x, np.array(timestamps, dtype=np.float64)):
                    session.run([OUTPUT_NAME], {INPUT_NAME: window.window[np.newaxis].astype(np.float32)})
                    windows += 1
                    seen[i] = True
                if k < len(buffer):
                    break
        if counting:
            hops += 1
        elif seen.all():
            windows, counting = 0, True
            allowed = set().union(*thread_affinities(os.getpid()))
            conn.send(("ready", sorted(allowed), escaped))
    conn.send((windows, hops))
    for inlet, _, _ in streams:
        inlet.close_stream()


def measure_floor(ctx, run: str, n: int, manifest_folder: Path, cpus, seconds: float, repin: bool) -> dict:
    """Start the floor process on ``cpus``, wait for its warm-up, read its CPU over ``seconds``."""
    conn, child = ctx.Pipe()
    proc = ctx.Process(
        target=floor_main, args=(run, n, str(manifest_folder), cpus, repin, child), daemon=True
    )
    proc.start()
    try:
        if not conn.poll(90 + 0.1 * n):
            raise RuntimeError("the floor process did not start its windows within the time allowed")
        _, affinity, escaped = conn.recv()
        cpu0, t0 = tree_cpu_seconds(proc.pid)[0], time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = tree_cpu_seconds(proc.pid)[0], time.monotonic()
        conn.send("stop")
        windows, hops = conn.recv()
    finally:
        proc.join(15)
        if proc.is_alive():
            proc.kill()
    return {
        "cpu_s": cpu1 - cpu0,
        "seconds": t1 - t0,
        "windows": windows,
        "expected": n * hops,
        "affinity": affinity,
        "escaped": escaped,
    }


# ----------------------------------------------------------------------------------- one level


@dataclass
class Level:
    """What one (workers, streams) level measured."""

    workers: int
    streams: int
    states: int
    expected: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    service_cpu_percent: float  # of the service's pinned cores together
    service_ms_per_stream_s: float
    floor_ms_per_stream_s: float
    floor_windows_ratio: float
    push_lag_p99_ms: float
    service_affinity: list[int]
    floor_affinity: list[int]
    service_threads_allowed: list[int]  # union of every service thread's allowed cores, after re-pinning
    service_escaped: int  # service threads found allowed outside its cores (ORT's) and re-pinned
    floor_escaped: int
    processes: int  # the service's process tree during the measurement
    threads: list[float]  # service main process: CPU % of one core per thread, busiest first
    service_p99_ms: float  # chunk pulled -> state published, inside the service
    inference_p99_ms: float
    delivery_p99_ms: float  # state published -> received by the WebSocket client (wall clock)

    @property
    def ratio(self) -> float:
        return self.service_ms_per_stream_s / self.floor_ms_per_stream_s

    @property
    def complete(self) -> bool:
        return self.states >= 0.98 * self.expected

    @property
    def valid(self) -> bool:
        return self.push_lag_p99_ms <= MAX_PUSH_LAG_MS

    @property
    def meets_target(self) -> bool:
        return self.valid and self.complete and self.p99_ms <= TARGET_P99_MS

    @property
    def verdict(self) -> str:
        return "INVALID" if not self.valid else "MET" if self.meets_target else "NOT MET"


def _pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _push_lag(log: dict, since: float, until: float) -> np.ndarray:
    """Push lag (s) of the chunks due in [since, until] (LSL clock), every stream."""
    lags = [
        push[(ts >= since) & (ts <= until)] - ts[(ts >= since) & (ts <= until)]
        for ts, push in zip(log["ts"], log["push"], strict=True)
    ]
    return np.concatenate(lags) if lags else np.array([])


def run_level(workers: int, n: int, args, channels, repo: Path, run: str) -> Level:
    """Generator on the load cores; the service, then the floor, on the service cores; the same outlets."""
    ctx = mp.get_context("spawn")
    service_cpus = args.service_cpu_set
    env = {"M2S_WORKERS": str(workers)} if workers != 1 else None
    shards = args.generators or max(1, len(args.load_cpu_set))
    with LoadGenerator(
        ctx, run, n, channels, args.chunk, args.phase, args.seed, shards=shards, cpus=args.load_cpu_set
    ) as generator:
        with BenchService(repo, env=env, preexec_fn=lambda: os.sched_setaffinity(0, service_cpus)) as server:
            ids = server.start_streams(run, n)
            # After the model's sessions exist (see pin_tree).
            escaped = pin_tree(server.pid, service_cpus, repin=not args.keep_ort_affinity)
            affinity = sorted(os.sched_getaffinity(server.pid))
            allowed = sorted(set().union(*thread_affinities(server.pid)))
            threads0 = thread_cpu(server.pid)
            (cpu0, _), t0, lsl0 = tree_cpu_seconds(server.pid), time.monotonic(), pylsl.local_clock()
            received = asyncio.run(collect_states(server.ws_url, args.duration, warmup=1.0))
            (cpu1, processes), t1, lsl1 = tree_cpu_seconds(server.pid), time.monotonic(), pylsl.local_clock()
            threads1 = thread_cpu(server.pid)
        floor = measure_floor(
            ctx,
            run,
            n,
            repo / BENCH_MODEL / "1",
            service_cpus,
            args.floor_duration,
            not args.keep_ort_affinity,
        )
        log = generator.stop()
    lat = 1e3 * window_latencies(received, ids, log)
    elapsed = t1 - t0
    service_cpu = cpu1 - cpu0
    threads = sorted((100 * (v - threads0.get(k, 0.0)) / elapsed for k, v in threads1.items()), reverse=True)
    return Level(
        workers=workers,
        streams=n,
        states=len(lat),
        expected=int(n * args.duration),
        p50_ms=_pct(lat, 50),
        p99_ms=_pct(lat, 99),
        max_ms=float(lat.max()) if len(lat) else float("nan"),
        service_cpu_percent=100 * service_cpu / elapsed / len(service_cpus),
        service_ms_per_stream_s=1e3 * service_cpu / (n * elapsed),
        floor_ms_per_stream_s=1e3 * floor["cpu_s"] / (n * floor["seconds"]),
        floor_windows_ratio=floor["windows"] / floor["expected"] if floor["expected"] else float("nan"),
        push_lag_p99_ms=1e3 * _pct(_push_lag(log, lsl0, lsl1), 99),
        service_affinity=affinity,
        floor_affinity=floor["affinity"],
        service_threads_allowed=allowed,
        service_escaped=escaped,
        floor_escaped=floor["escaped"],
        processes=processes,
        threads=threads,
        service_p99_ms=_pct([r[4] for r in received], 99),
        inference_p99_ms=_pct([r[3] for r in received], 99),
        delivery_p99_ms=_pct([r[5] for r in received], 99),
    )


# ----------------------------------------------------------------------------------- main


def _cpu_set(text: str, name: str, parser) -> set[int]:
    try:
        cpus = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        parser.error(f"{name} must be comma-separated core numbers, got {text!r}")
    if not cpus:
        parser.error(f"{name} names no core")
    usable = os.sched_getaffinity(0)
    absent = sorted(cpus - usable)
    if absent:
        parser.error(
            f"{name} names core(s) {absent} that this machine does not have or this process may not use; "
            f"usable cores: {sorted(usable)}"
        )
    return cpus


def _fmt_cpus(cpus) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams", default="50,100,150,200", help="load levels, comma-separated stream counts"
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds the service is measured per level"
    )
    parser.add_argument(
        "--floor-duration", type=float, default=8.0, help="seconds the floor is measured per level"
    )
    parser.add_argument(
        "--workers", default="1", help="comma-separated worker counts (M2S_WORKERS; 1: unset)"
    )
    parser.add_argument(
        "--service-cpus", default="0", help="cores of the service and the floor (comma-separated)"
    )
    parser.add_argument(
        "--load-cpus", default=None, help="cores of the generator and the client (default: the rest)"
    )
    parser.add_argument("--allow-shared", action="store_true", help="allow service and load cores to overlap")
    parser.add_argument(
        "--generators", type=int, default=0, help="generator processes (0: one per load core)"
    )
    parser.add_argument(
        "--chunk", type=int, default=10, help="samples per pushed chunk (10 = 50 ms at 200 Hz)"
    )
    parser.add_argument("--phase", choices=("random", "aligned"), default="random", help="stream phases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep-ort-affinity",
        action="store_true",
        help="leave ONNX Runtime's intra-op threads on the cores it pinned them to (not isolated: for comparison)",
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="print how the service's CPU spreads over its threads, per level",
    )
    args = parser.parse_args()
    try:
        levels = sorted({int(x) for x in args.streams.split(",")})
        worker_counts = sorted({int(x) for x in args.workers.split(",")})
    except ValueError:
        parser.error("--streams and --workers must be comma-separated integers")
    if not levels or min(levels) < 1 or not worker_counts or min(worker_counts) < 1:
        parser.error("--streams and --workers need counts >= 1")
    if not Path("/proc/self/stat").exists() or not hasattr(os, "sched_setaffinity"):
        parser.error("this benchmark pins processes and reads CPU time from /proc (Linux only)")
    if args.generators < 0:
        parser.error("--generators must be >= 0")
    service = _cpu_set(args.service_cpus, "--service-cpus", parser)
    if args.load_cpus is None:
        load = os.sched_getaffinity(0) - service
        if not load:
            parser.error(
                f"no core is left for the load side once the service has {_fmt_cpus(service)}; give "
                "--load-cpus (with --allow-shared, as the sets then overlap)"
            )
    else:
        load = _cpu_set(args.load_cpus, "--load-cpus", parser)
    if service & load and not args.allow_shared:
        parser.error(
            f"--service-cpus {_fmt_cpus(service)} and --load-cpus {_fmt_cpus(load)} share core(s) "
            f"{_fmt_cpus(service & load)}: the load side would be measured as the service's; give disjoint "
            "sets or --allow-shared"
        )
    args.service_cpu_set, args.load_cpu_set = service, load

    pin_threads(os.getpid(), load)  # this process, its WebSocket client and (inherited) its children
    shards = args.generators or len(load)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"pylsl {pylsl.__version__}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start"
    )
    print(
        f"affinity: service + floor on core(s) {_fmt_cpus(service)}; load (this process "
        f"{_fmt_cpus(os.sched_getaffinity(0))}, WebSocket client, {shards} generator process(es)) on "
        f"{_fmt_cpus(load)}{'; SHARED cores allowed' if service & load else ''}"
    )
    print(
        f"load: {N_CHANNELS} ch @ {SFREQ:g} Hz float32 per stream, chunks of {args.chunk} samples, {args.phase} "
        f"phases; model {BENCH_MODEL} (demo EEG graph, T=5 x 310, 1-s DE window, 1-s hop); service "
        f"{args.duration:g} s, floor {args.floor_duration:g} s per level"
    )
    for w in worker_counts:
        print(
            f"workers={w}: "
            + (
                f"M2S_WORKERS={w} in the service's environment"
                if w != 1
                else "M2S_WORKERS not set (1 worker)"
            )
        )
    run = f"{os.getpid()}"
    lsl_cfg = Path(tempfile.gettempdir()) / f"m2s-bench-lsl-{run}.cfg"
    lsl_cfg.write_text("[log]\nlevel = -2\n")  # liblsl's INFO lines from the children would bury the table
    os.environ.setdefault("LSLAPICFG", str(lsl_cfg))
    results: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="m2s-bench-") as tmp:
        repo = Path(tmp) / "repository"
        channels = make_bench_repository(repo)
        print(
            f"{'wk':>2} {'streams':>7} {'states/expected':>15} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
            f"{'svc CPU%':>8} {'svc ms/s-s':>10} {'floor ms/s-s':>12} {'ratio':>6} {'gen lag':>7} "
            f"{'svc p99':>7} {'inf p99':>7} {'dlv p99':>7} {'cpus':>5} {'procs':>5}  target",
            flush=True,
        )
        for w in worker_counts:
            failed = 0
            for n in levels:
                if failed >= 2:
                    print(f"{w:>2} {n:>7}  skipped: two levels failed already", flush=True)
                    continue
                try:
                    lv = run_level(w, n, args, channels, repo, f"{run}-{w}-{n}")
                except Exception as err:  # the service or a process failed: report the level, go on
                    print(f"{w:>2} {n:>7}  level failed: {type(err).__name__}: {err}", flush=True)
                    failed += 1
                    continue
                results.append(lv)
                failed += not lv.meets_target
                print(
                    f"{lv.workers:>2} {lv.streams:>7} {f'{lv.states}/{lv.expected}':>15} {lv.p50_ms:>7.2f} "
                    f"{lv.p99_ms:>7.2f} {lv.max_ms:>7.2f} {lv.service_cpu_percent:>8.1f} "
                    f"{lv.service_ms_per_stream_s:>10.3f} {lv.floor_ms_per_stream_s:>12.3f} {lv.ratio:>6.2f} "
                    f"{lv.push_lag_p99_ms:>7.2f} {lv.service_p99_ms:>7.2f} {lv.inference_p99_ms:>7.2f} {lv.delivery_p99_ms:>7.2f} "
                    f"{_fmt_cpus(lv.service_affinity):>5} {lv.processes:>5}  {lv.verdict}",
                    flush=True,
                )
                if args.keep_ort_affinity:
                    print(
                        f"   NOT isolated (--keep-ort-affinity): {lv.service_escaped} service and {lv.floor_escaped} "
                        f"floor thread(s) allowed outside {_fmt_cpus(service)}, on "
                        f"{_fmt_cpus(lv.service_threads_allowed)}",
                        flush=True,
                    )
                elif lv.service_escaped or lv.floor_escaped:
                    print(
                        f"   re-pinned to {_fmt_cpus(service)} after start-up: {lv.service_escaped} service and "
                        f"{lv.floor_escaped} floor thread(s) allowed elsewhere (ONNX Runtime's intra-op threads); "
                        f"every thread now on {_fmt_cpus(lv.service_threads_allowed)}",
                        flush=True,
                    )
                if lv.floor_affinity != lv.service_affinity or not 0.98 <= lv.floor_windows_ratio <= 1.02:
                    print(
                        f"   floor: cores {_fmt_cpus(lv.floor_affinity)}, windows/expected "
                        f"{lv.floor_windows_ratio:.3f}",
                        flush=True,
                    )
                if args.threads:
                    busy = [t for t in lv.threads if t >= 0.05]
                    print(
                        f"   service main process: {len(lv.threads)} threads, {len(busy)} with >= 0.05 % of a core; "
                        f"busiest (% of a core): {' '.join(f'{t:.1f}' for t in lv.threads[:6])}; the rest together "
                        f"{sum(lv.threads[6:]):.1f}",
                        flush=True,
                    )
    print(
        "latency: push of the chunk holding a window's last sample -> EmotionState at the WebSocket client; "
        f"target p99 <= {TARGET_P99_MS:g} ms with >= 98 % of the states"
    )
    print(
        "svc CPU%: service process tree, % of its pinned cores; ms/s-s: CPU ms per stream-second (service tree, "
        "floor process); ratio = service / floor"
    )
    print(
        f"gen lag: generator push lag p99 (ms) while the service was measured (> {MAX_PUSH_LAG_MS:g}: INVALID); "
        "svc p99: chunk pulled -> state published inside the service; inf p99: its ONNX run; dlv p99: published -> "
        "received by the client (wall clock); cpus: read back"
    )
    capacity = {
        w: max((lv.streams for lv in results if lv.workers == w and lv.meets_target), default=0)
        for w in worker_counts
    }
    if len(worker_counts) > 1:
        base = capacity.get(1, 0)
        for w in worker_counts:
            if w != 1:
                ratio = f"{capacity[w] / base:.2f}" if base else "n/a (1 worker met no level)"
                print(f"capacity({w} workers)/capacity(1 worker) = {capacity[w]}/{base} = {ratio}")
    one = [lv for lv in results if lv.workers == 1] or results
    if len(service) > 1:
        print(f"note: the service had {len(service)} cores, not one")
    if not one:
        print("streams=0 p99_ms=nan cpu_per_stream_ratio=nan")
        return
    met = [lv for lv in one if lv.meets_target]
    best = max(met, key=lambda lv: lv.streams) if met else min(one, key=lambda lv: lv.streams)
    print(
        f"streams={best.streams if met else 0} p99_ms={best.p99_ms:.2f} cpu_per_stream_ratio={best.ratio:.2f}"
    )


if __name__ == "__main__":
    main()
