"""POST /predict under concurrent load over real HTTP: the m2s-serve process vs the in-process engine floor.

The service runs as its own process (``m2s-serve`` on a free loopback port, default demo bundle, no LSL
streams, ``M2S_*`` variables of the caller's environment removed). The load generator is one
``httpx.AsyncClient`` per concurrency level (HTTP/1.1 keep-alive, pool sized to the level) with
``concurrency`` workers that each send the next request as soon as the previous answer arrived. Each
level runs ``--warmup`` s (not recorded) then ``--duration`` s (recorded: the requests that complete
inside that window, so requests/s = completions / duration and the latencies are theirs). A non-200
answer or a transport error is an error: counted (warm-up and drain included), reported with its first
examples, never dropped; any error makes the exit status 1.

Payloads are the two bodies /predict takes, each exactly ONE model window (the API has no batch form):

- ``features``: ``{"modality", "features": (T, D)}``, raw (not normalised) feature vectors built from the
  manifest's normalisation statistics (about 30 kB of JSON for the demo EEG graph, T x D = 5 x 310);
- ``signal``: ``{"modality", "signal": {"sfreq", "channels", "data"}}``, the shortest raw synthetic signal
  that yields one window (``window_s + (T - 1) * spacing_s``: 10 s of 62-channel EEG, about 2.5 MB).

The floor, measured in the same run on the same data, is the service's own ``InferenceEngine.predict``
in this process (same bundle, same providers), fed from the same number of threads: for ``features`` the
manifest normalisation plus ``predict``; for ``signal`` the bundle's ``FeaturePipeline`` (feature
extraction) plus ``predict``. ``http/engine`` is the ratio of the p50 latencies: what HTTP, JSON and
FastAPI add. One extra engine row (``features x64``) runs 64 windows per call, the batching ceiling a
batch endpoint could reach. The client-side cost of ``json.dumps`` of each body is printed too (the load
generator encodes each body once and reuses the bytes).

CPU %: CPU time of the server process (all threads, ``utime + stime`` from ``/proc/<pid>/stat``) and of
this process (the load generator; for engine rows, the in-process engine) over the recorded window,
divided by its wall time; 100 % = one core. ``srv ms/req`` is the server's CPU time per answered
request, the number least disturbed by other load on the machine. Linux only (``/proc``). Client and
server share the machine's cores: when ``cli CPU%`` nears 100 the single-threaded client, not the
server, is the limit (httpx's connection pool costs grow with the pool size, encode/httpx#3215).

Usage: python benchmarks/predict_load.py [--concurrency 1,4,16,64] [--payloads features,signal]
[--duration 5] [--warmup 1] [--engine-duration 2] [--modality eeg] [--providers EP[,EP...]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service.engine import InferenceEngine
from synthetic import SyntheticConfig, generate_trial

PAYLOADS = ("features", "signal")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MAX_ERROR_EXAMPLES = 3


# -- measurement records ------------------------------------------------------------------------------


@dataclass
class Level:
    """What one (payload, concurrency) level measured; latencies in s, CPU in % of one core."""

    path: str  # "http" or "engine"
    payload: str
    concurrency: int
    windows_per_request: int
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    server_cpu_pct: float | None = None
    client_cpu_pct: float | None = None

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def pct_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e3 if self.latencies else float("nan")

    def note_error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_examples) < MAX_ERROR_EXAMPLES and text not in self.error_examples:
            self.error_examples.append(text)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time (s) of process ``pid``, all its threads, from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and ')'
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 (utime, stime) of proc(5)


# -- the service process ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec (Linux): it gets SIGTERM if this script dies without cleaning up.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def running_service(providers: list[str] | None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``m2s-serve`` on a free port, wait until ready; yield (URL, process); SIGTERM at exit."""
    exe = Path(sys.executable).parent / "m2s-serve"
    if not exe.exists():
        raise RuntimeError(
            f"{exe} not found; install the project into this environment (scripts/bootstrap dev)."
        )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2S_")}  # defaults, no token
    command = [str(exe), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if providers is not None:
        command += ["--providers", ",".join(providers)]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script, which then stops the server in order
            preexec_fn=_die_with_parent,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(
                        f"m2s-serve exited with status {proc.returncode}:\n{log.read()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"m2s-serve was not ready within {READY_TIMEOUT_S:.0f} s")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                        break
                time.sleep(0.1)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                log.seek(0)
                sys.stderr.write(f"m2s-serve exited with status {proc.returncode}:\n{log.read()[-3000:]}\n")


# -- payloads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """One request body (as JSON bytes) and the in-process work equivalent to serving it."""

    name: str
    body: bytes
    encode_ms: float  # json.dumps of the body dict, median
    floor: Callable[[], np.ndarray]  # numpy in, probabilities out: normalise/extract + engine.predict
    windows: int = 1


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def build_payloads(engine: InferenceEngine, ref: str, modality: str, names: list[str]) -> dict[str, Payload]:
    """The request bodies and their in-process floors for ``modality`` of the loaded model ``ref``."""
    graph = engine.get(ref).bundle.manifest.graph(modality)
    mean, std = graph.normalisation.mean_array, graph.normalisation.std_array
    rng = np.random.default_rng(0)
    payloads = {}
    if "features" in names:
        raw = mean + std * rng.standard_normal((graph.seq_len, graph.dim))
        body = {"modality": modality, "model": ref, "features": raw.tolist()}
        windows64 = rng.standard_normal((64, graph.seq_len, graph.dim)).astype(np.float32)  # normalised

        def features_floor() -> np.ndarray:
            window = graph.normalisation.apply(raw)  # what the route does once the body is parsed
            return engine.predict(ref, modality, window[np.newaxis])[0]

        payloads["features"] = Payload(
            "features", json.dumps(body).encode(), median_ms(lambda: json.dumps(body), 50), features_floor
        )
        payloads["features x64"] = Payload(
            "features x64", b"", float("nan"), lambda: engine.predict(ref, modality, windows64), windows=64
        )
    if "signal" in names:
        spec = graph.feature_spec
        n_needed = graph.feature_pipeline().samples_needed
        trial = generate_trial(
            SyntheticConfig(trial_duration_s=max(30.0, np.ceil(n_needed / spec.sfreq) + 1)),
            0,
            0,
            0,
            modalities=(modality,),
        )
        data = trial.signals[modality][:, :n_needed]
        timestamps = np.arange(n_needed) / spec.sfreq
        body = {
            "modality": modality,
            "model": ref,
            "signal": {"sfreq": spec.sfreq, "channels": list(spec.channels), "data": data.tolist()},
        }

        def signal_floor() -> np.ndarray:
            windows = graph.feature_pipeline(live=True).windows(data, timestamps)  # as the route does
            return engine.predict(ref, modality, windows.x[-1:])[0]

        payloads["signal"] = Payload(
            "signal", json.dumps(body).encode(), median_ms(lambda: json.dumps(body), 5), signal_floor
        )
    return payloads


# -- load generators ----------------------------------------------------------------------------------


async def http_level(
    url: str, payload: Payload, concurrency: int, warmup_s: float, duration_s: float, pid: int
) -> Level:
    """``concurrency`` closed-loop workers on one keep-alive client; records the window after ``warmup_s``."""
    level = Level("http", payload.name, concurrency, payload.windows)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    t_start = time.perf_counter()
    t_rec, t_end = t_start + warmup_s, t_start + warmup_s + duration_s
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120.0) as client:

        async def worker() -> None:
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", content=payload.body, headers=headers)
                    error = None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as err:
                    error = f"{type(err).__name__}: {err}"
                t1 = time.perf_counter()
                if error is not None:
                    level.note_error(error)  # warm-up and drain included: no error goes unreported
                elif t_rec <= t1 <= t_end:
                    level.latencies.append(t1 - t0)

        async def meter() -> tuple[float, float, float]:
            await asyncio.sleep(max(0.0, t_rec - time.perf_counter()))
            cpu = (cpu_seconds(pid), cpu_seconds(), time.perf_counter())
            await asyncio.sleep(max(0.0, t_end - time.perf_counter()))
            return cpu_seconds(pid) - cpu[0], cpu_seconds() - cpu[1], time.perf_counter() - cpu[2]

        *_, (server_cpu, client_cpu, wall) = await asyncio.gather(
            *(worker() for _ in range(concurrency)), meter()
        )
    level.elapsed_s = duration_s
    level.server_cpu_pct, level.client_cpu_pct = 100 * server_cpu / wall, 100 * client_cpu / wall
    return level


def engine_level(payload: Payload, concurrency: int, warmup_s: float, duration_s: float) -> Level:
    """``concurrency`` threads calling the in-process floor in a closed loop; the same recording rule."""
    level = Level("engine", payload.name, concurrency, payload.windows)
    t_start = time.perf_counter()
    t_rec, t_end = t_start + warmup_s, t_start + warmup_s + duration_s
    lock = threading.Lock()

    def worker() -> None:
        times = []
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            try:
                payload.floor()
            except Exception as err:  # counted like an HTTP error, never silently dropped
                with lock:
                    level.note_error(f"{type(err).__name__}: {err}")
                continue
            t1 = time.perf_counter()
            if t_rec <= t1 <= t_end:
                times.append(t1 - t0)
        with lock:
            level.latencies.extend(times)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, t_rec - time.perf_counter()))
    cpu0 = cpu_seconds()
    time.sleep(max(0.0, t_end - time.perf_counter()))
    level.client_cpu_pct = 100 * (cpu_seconds() - cpu0) / duration_s
    for t in threads:
        t.join()
    level.elapsed_s = duration_s
    return level


def check_same_answer(url: str, payload: Payload, class_names: list[str]) -> None:
    """The HTTP answer equals the in-process floor's probabilities (the two paths do the same work)."""
    r = httpx.post(
        f"{url}/predict", content=payload.body, headers={"content-type": "application/json"}, timeout=60
    )
    if r.status_code != 200:
        raise RuntimeError(
            f"/predict answered {r.status_code} for the {payload.name} payload: {r.text[:300]}"
        )
    got = np.array([r.json()["probabilities"][c] for c in class_names])
    expected = payload.floor()
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"{payload.name}: /predict gave {got}, the in-process engine {expected}")


# -- report -------------------------------------------------------------------------------------------


def parse_list(text: str, kind: type, allowed: tuple | None = None) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {kind.__name__}, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    if allowed is not None and any(v not in allowed for v in values):
        raise argparse.ArgumentTypeError(f"allowed values are {', '.join(allowed)}, got {text!r}")
    if kind is int and any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"concurrency levels must be >= 1, got {text!r}")
    return values


HEADER = (
    f"{'path':<7}{'payload':<14}{'conc':>5}{'n':>7}{'req/s':>9}{'win/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    f"{'max ms':>9}{'errors':>7}{'srv CPU%':>9}{'cli CPU%':>9}{'srv ms/req':>11}{'http/engine':>12}"
)


def row(level: Level, engine_p50: dict[tuple[str, int], float]) -> str:
    fmt = lambda v: f"{v:>9.0f}" if v is not None else f"{'-':>9}"  # noqa: E731
    floor = engine_p50.get((level.payload, level.concurrency))
    # Server CPU time per answered request: far less sensitive to other load on the machine than latency.
    per_request = (
        f"{level.server_cpu_pct / 100 * level.elapsed_s / len(level.latencies) * 1e3:>11.2f}"
        if level.server_cpu_pct is not None and level.latencies
        else f"{'-':>11}"
    )
    ratio = f"{level.pct_ms(50) / floor:>11.1f}x" if level.path == "http" and floor else f"{'':>12}"
    return (
        f"{level.path:<7}{level.payload:<14}{level.concurrency:>5}{len(level.latencies):>7}{level.rps:>9.1f}"
        f"{level.rps * level.windows_per_request:>9.1f}{level.pct_ms(50):>9.2f}{level.pct_ms(99):>9.2f}"
        f"{level.pct_ms(100):>9.2f}{level.errors:>7}{fmt(level.server_cpu_pct)}{fmt(level.client_cpu_pct)}"
        f"{per_request}{ratio}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency",
        type=lambda t: parse_list(t, int),
        default=[1, 4, 16, 64],
        help="comma-separated concurrency levels (default 1,4,16,64)",
    )
    parser.add_argument(
        "--payloads",
        type=lambda t: parse_list(t, str, PAYLOADS),
        default=list(PAYLOADS),
        help="comma-separated request bodies: features (one T x D window), signal (raw, one window)",
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="recorded seconds per HTTP level (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unrecorded seconds before each level (default 1)"
    )
    parser.add_argument(
        "--engine-duration",
        type=float,
        default=2.0,
        help="recorded seconds per in-process engine level (default 2)",
    )
    parser.add_argument(
        "--modality", default="eeg", help="modality of the default model to request (default eeg)"
    )
    parser.add_argument(
        "--providers",
        type=lambda t: parse_list(t, str),
        default=None,
        metavar="EP[,EP...]",
        help="ONNX Runtime execution providers of the server and the in-process engine "
        "(default: theirs, CUDA if available, else CPU)",
    )
    args = parser.parse_args()
    if args.duration <= 0 or args.warmup < 0 or args.engine_duration <= 0:
        parser.error("--duration and --engine-duration must be > 0 s and --warmup >= 0 s")
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads process CPU time from /proc: Linux only")

    try:
        import uvloop

        uvloop.install()  # the client's event loop is lighter on the shared cores; the server uses it too
        loop_name = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop_name = "asyncio"

    with running_service(args.providers) as (url, proc):
        ready = httpx.get(f"{url}/v2/health/ready", timeout=10).json()
        ref = ready["models"][0]
        engine = InferenceEngine(ModelRepository(DEFAULT_REPOSITORY), providers=args.providers)
        try:
            loaded = engine.load(ref)
            if args.modality not in loaded.bundle.manifest.graphs:
                parser.error(
                    f"--modality {args.modality}: model {ref} has "
                    f"{', '.join(sorted(loaded.bundle.manifest.graphs))}"
                )
            class_names = list(loaded.bundle.manifest.class_names)
            payloads = build_payloads(engine, ref, args.modality, args.payloads)
            graph = loaded.bundle.manifest.graph(args.modality)
            print(
                f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
                f"httpx {httpx.__version__}, client loop {loop_name}"
            )
            print(
                f"model {ref} ({'default' if ref.startswith(DEMO_BUNDLE) else 'custom'}), modality "
                f"{args.modality}: T x D = {graph.seq_len} x {graph.dim}; server provider "
                f"{ready['providers'][ref][args.modality]}, "
                f"in-process engine {loaded.providers[args.modality]}"
            )
            for p in payloads.values():
                if p.body:
                    check_same_answer(url, p, class_names)
                    print(
                        f"payload {p.name}: {len(p.body) / 1e3:.1f} kB JSON, "
                        f"client json.dumps {p.encode_ms:.2f} ms"
                    )
            levels, engine_p50 = [], {}
            for p in payloads.values():  # the floor first, while the server idles
                for c in args.concurrency if p.windows == 1 else [1]:
                    level = engine_level(p, c, min(args.warmup, 0.5), args.engine_duration)
                    engine_p50[(p.name, c)] = level.pct_ms(50)
                    levels.append(level)
        finally:
            engine.close()
        for p in payloads.values():
            if not p.body:
                continue
            for c in args.concurrency:
                levels.append(asyncio.run(http_level(url, p, c, args.warmup, args.duration, proc.pid)))

    print(HEADER)
    for level in levels:
        print(row(level, engine_p50))
    n_errors = sum(level.errors for level in levels)
    for level in levels:
        for example in level.error_examples:
            print(f"error ({level.path} {level.payload} c={level.concurrency}): {example}")
    best = max(
        (lv for lv in levels if lv.path == "http" and lv.payload == "features"),
        key=lambda lv: lv.rps,
        default=None,
    )
    if best is None:
        print(f"errors={n_errors}")
    else:
        print(
            f"predict_rps={best.rps:.0f} p99_ms={best.pct_ms(99):.1f} "
            f"concurrency={best.concurrency} errors={n_errors}"
        )
    return 1 if n_errors else 0


if __name__ == "__main__":
    sys.exit(main())
