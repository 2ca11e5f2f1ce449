"""EEG inference graph (window -> class probabilities): ONNX Runtime vs torch eager, p50/p99 per batch size.

What is timed, per graph size and batch size, in the same run, on the same input (float32, contiguous,
created once):

torch eager         ``training.export.InferenceGraph(embedder, classifier)``, the very module that
                    ``export_bundle`` writes to ``eeg.onnx`` (ER encoder -> mean over T -> projection ->
                    EmotionClassifier -> softmax), eval mode, under ``torch.inference_mode()``.
ort session.run     that module exported in this run by ``training.export.export_bundle`` into a
                    temporary model repository, loaded with the service's own session options
                    (``service.engine.session_options``) on the CPU (or CUDA) execution provider.
ort engine.predict  ``service.engine.InferenceEngine.predict`` on that bundle: input checks plus the
                    hand-off to the micro-batching worker thread and back.
(cuda only)         torch with tensors already on the device, and ORT with IO binding on the device:
                    compute without the host<->device copies.

``--device cuda`` needs a CUDA build of torch and onnxruntime-gpu. It prints the provider each ORT
session really uses and exits with an error, printing no GPU figures, if ONNX Runtime fell back
to the CPU; torch's TF32 matmul setting is made to match ORT's ``use_tf32``.

Graph sizes: ``demo`` = the committed demo bundle's manifest (T, D, classes, recorded model config);
``reference`` = the paper's dimensions (EEG 62 x 5 = 310, T = 5, d_model 128, 4 blocks, d_ff 1024).
Weights are seeded random: timing does not depend on their values. Every timed path's output is
checked against torch on the benchmark input (max abs difference of the probabilities < 1e-4).

Targets (CPU, 2 cores, batch 1, reference graph): ORT p50 >= 2x faster than torch, ORT p50 <= 2 ms.
The last two lines are ``ratio=<torch p50 / ort p50>x target=2x MET|NOT MET`` and
``ort_p50_ms=<ort p50> target=2ms MET|NOT MET`` for the reference graph (demo lines come before).
Columns: p50/p99/mean wall time per call (``time.perf_counter_ns``), windows/s (from the mean), CPU
time of the whole process per call (shows thread pools spinning), speed-up = torch p50 / row p50.
``--gap-ms 20`` sleeps before each timed call, like the sporadic calls of live streams (cold caches,
sleeping thread pools); the default times calls back to back. ``--sweep`` adds ONNX Runtime
session-option variants (threads, spinning, optimisation level, IO binding) and torch on 1 thread,
to see what the service's settings cost.

Usage: python benchmarks/inference.py [--batch-sizes 1,64] [--graphs demo,reference] [--device cpu|cuda]
       [--threads N] [--iters N] [--iters-batched N] [--max-seconds S] [--gap-ms MS] [--sweep]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.config import M2SConfig, ModalityConfig
from models.m2s import M2S, EmotionClassifier
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, Bundle, ModelRepository
from service.engine import INPUT_NAME, OUTPUT_NAME, InferenceEngine
from service.engine import session_options as service_session_options  # the service's own, not a copy
from signals.normalisation import Normalisation
from training.export import InferenceGraph, ModalityExport, export_bundle

MODALITY = "eeg"
PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities, torch vs every ORT path
TARGET_RATIO = 2.0  # ORT p50 >= 2x faster than torch at batch 1
TARGET_P50_MS = 2.0  # ORT p50 at batch 1
MIN_CALLS = 50  # timed calls per method before --max-seconds may stop it
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
SPIN_KEYS = ("session.intra_op.allow_spinning", "session.force_spinning_stop")  # printed in the header
# The paper's EEG encoder (models.config defaults); M2S needs a second modality, EYE 33 as in pretraining.
REFERENCE_CONFIG = M2SConfig(
    modalities=(ModalityConfig(name="eeg", dim=310, n_channels=62), ModalityConfig(name="eye", dim=33)),
)


@dataclass(frozen=True)
class GraphSize:
    """One EEG inference graph to benchmark: network config, classes and the feature spec its bundle carries."""

    name: str
    config: M2SConfig
    class_names: tuple[str, ...]
    feature_spec: Any
    spacing_s: float

    def describe(self) -> str:
        c, eeg = self.config, self.config.modality(MODALITY)
        return (
            f"EEG T={c.seq_len} D={eeg.dim} ({eeg.n_channels} ch x {eeg.n_bands} bands), d_model {c.d_model}, "
            f"{c.n_blocks} block(s), d_ff {c.d_ff}, {c.n_heads} heads x {c.head_dim}, "
            f"{len(self.class_names)} classes"
        )


@dataclass(frozen=True)
class Timing:
    """Per-call wall times of one method at one batch size, and the CPU time the process used meanwhile."""

    method: str
    batch: int
    ns: np.ndarray  # shape (n_calls,), int64, wall time of each call in ns
    cpu_s: float  # CPU time (all threads of this process) over the timed calls and the gaps between them, s

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.ns, 50)) / 1e6

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.ns, 99)) / 1e6

    @property
    def mean_ms(self) -> float:
        return float(self.ns.mean()) / 1e6

    @property
    def windows_per_s(self) -> float:
        return self.batch / (self.mean_ms / 1e3)

    @property
    def cpu_ms_per_call(self) -> float:
        """Includes idle spinning of thread pools between calls (see ``--gap-ms``)."""
        return 1e3 * self.cpu_s / len(self.ns)


def cpu_name() -> str:
    """CPU model (from /proc/cpuinfo on Linux), else the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{platform.machine()} {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def config_entry(options: ort.SessionOptions, key: str) -> str:
    """A session config entry's value, or ``"unset (ORT default)"``."""
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # ORT raises for a key that was never set
        return "unset (ORT default)"


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,64,1024"`` -> ``(1, 64, 1024)``; argparse type."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"batch sizes must be comma-separated integers such as 1,64,1024, got {text!r}."
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}.")
    return tuple(dict.fromkeys(sizes))  # drop duplicates, keep order


def parse_graphs(text: str) -> tuple[str, ...]:
    """``"demo,reference"`` -> names; argparse type."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [n for n in names if n not in ("demo", "reference")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"graphs must be demo and/or reference (comma-separated), got {text!r}."
        )
    return names


def graph_sizes(names: tuple[str, ...]) -> list[GraphSize]:
    """Demo-bundle and/or reference dimensions; the feature spec comes from the demo bundle's EEG graph."""
    demo = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)
    graph = demo.manifest.graph(MODALITY)
    recorded = demo.manifest.training.get("model_config")
    if "demo" in names and recorded is None:
        raise SystemExit(
            f"error: {demo.path}/manifest.json records no training.model_config, so the demo network cannot "
            "be rebuilt; rebuild the bundle with `m2s-train demo-bundle` or pass --graphs reference."
        )
    sizes = []
    for name in names:
        config = M2SConfig.from_dict(recorded) if name == "demo" else REFERENCE_CONFIG
        eeg = config.modality(MODALITY)
        if (config.seq_len, eeg.dim) != (graph.seq_len, graph.dim):
            raise SystemExit(
                f"error: the {name} network takes EEG windows ({config.seq_len}, {eeg.dim}) but the demo "
                f"bundle's EEG feature spec gives ({graph.seq_len}, {graph.dim}); the bundle is inconsistent."
            )
        sizes.append(
            GraphSize(
                name=name,
                config=config,
                class_names=demo.manifest.class_names,
                feature_spec=graph.feature_spec,
                spacing_s=graph.spacing_s,
            )
        )
    return sizes


def build_and_export(size: GraphSize, root: Path) -> tuple[InferenceGraph, Bundle, dict[str, float]]:
    """Seeded random M2S EEG embedder + classifier, exported with ``export_bundle`` into ``root``.

    Returns the ``InferenceGraph`` over the same (shared) modules that went into ``eeg.onnx``, the
    bundle, and export_bundle's own parity check (max abs difference per graph).
    """
    torch.manual_seed(0)
    embedder = M2S(size.config).embedder(MODALITY)
    classifier = EmotionClassifier(size.config.proj_dim, len(size.class_names))
    dim = size.config.modality(MODALITY).dim
    item = ModalityExport(
        embedder=embedder,
        classifier=classifier,
        feature_spec=size.feature_spec,
        normalisation=Normalisation.identity(dim),
        spacing_s=size.spacing_s,
    )
    bundle, parity = export_bundle(
        root,
        f"bench-{size.name}",
        {MODALITY: item},
        class_names=size.class_names,
        seq_len=size.config.seq_len,
    )
    return InferenceGraph(embedder, classifier).eval(), bundle, parity


def op_histogram(model: onnx.ModelProto) -> str:
    """``"<n> nodes: Op count, ..."`` of a graph's top level, most frequent first."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return f"{sum(counts.values())} nodes: " + ", ".join(f"{op} {n}" for op, n in counts.most_common())


def optimised_op_histogram(path: Path, workdir: Path) -> str:
    """Op histogram after ONNX Runtime's graph optimisations under the service's session options (CPU EP)."""
    options = service_session_options()
    options.optimized_model_filepath = str(workdir / f"{path.stem}.optimised.onnx")
    options.log_severity_level = 3  # the "NCHWc transformer, hardware specific" notice is expected here
    ort.InferenceSession(str(path), sess_options=options, providers=[CPU])
    return op_histogram(onnx.load(options.optimized_model_filepath))


@dataclass(frozen=True)
class Budget:
    """How long one method is timed at one batch size.

    ``iters`` timed calls after ``warmup`` untimed ones; the timing stops earlier once ``max_s``
    seconds have passed and at least ``min(iters, MIN_CALLS)`` calls were timed (``max_s`` 0: never).
    ``gap_s`` > 0 sleeps before each timed call, as between the sporadic calls of a live stream.
    """

    iters: int
    warmup: int
    max_s: float
    gap_s: float  # sleep before each timed call (not timed)

    @classmethod
    def for_batch(cls, batch: int, args: argparse.Namespace) -> Budget:
        iters = args.iters if batch == 1 else args.iters_batched
        return cls(iters=iters, warmup=max(5, iters // 10), max_s=args.max_seconds, gap_s=args.gap_ms / 1e3)


def process_cpu_s() -> float:
    """User + system CPU time of this process (all threads), s."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_calls(label: str, batch: int, fn: Callable[[], object], budget: Budget) -> Timing:
    """Time each call of ``fn`` (wall, ns) after the warm-up, sleeping ``budget.gap_s`` between calls."""
    for _ in range(budget.warmup):
        fn()
    ns = np.empty(budget.iters, dtype=np.int64)
    deadline = time.perf_counter_ns() + int(budget.max_s * 1e9) if budget.max_s > 0 else None
    n = budget.iters
    cpu_start = process_cpu_s()
    for i in range(budget.iters):
        if budget.gap_s:
            time.sleep(budget.gap_s)  # a live stream calls sporadically: caches and thread pools go cold
        start = time.perf_counter_ns()
        fn()
        ns[i] = time.perf_counter_ns() - start
        if deadline is not None and i + 1 >= MIN_CALLS and start + ns[i] > deadline:
            n = i + 1
            break
    return Timing(label, batch, ns[:n], process_cpu_s() - cpu_start)


def check_parity(label: str, got: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference of two probability arrays; RuntimeError above PARITY_TOLERANCE."""
    if got.shape != expected.shape:
        raise RuntimeError(f"{label} returned shape {got.shape}, torch {expected.shape}: a different graph.")
    error = float(np.max(np.abs(got - expected)))
    if not error < PARITY_TOLERANCE:
        raise RuntimeError(
            f"{label} differs from torch by {error:.2e} (>= {PARITY_TOLERANCE:.0e}); refusing to time a graph "
            "that computes something else."
        )
    return error


def ort_session(
    path: Path, providers: list[str], tweak: Callable[[ort.SessionOptions], None] | None = None
) -> ort.InferenceSession:
    """A session with the service's options (optionally changed by ``tweak``)."""
    options = service_session_options()
    if tweak is not None:
        tweak(options)
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def iobinding_call(session: ort.InferenceSession, x: np.ndarray, n_classes: int, device: str):
    """``fn()`` running ``session`` with input and output bound once (on ``device``); and a reader of its output."""
    binding = session.io_binding()
    ort_device = "cuda" if device == "cuda" else "cpu"
    window = ort.OrtValue.ortvalue_from_numpy(x, ort_device, 0)
    probabilities = ort.OrtValue.ortvalue_from_shape_and_type((len(x), n_classes), np.float32, ort_device, 0)
    binding.bind_ortvalue_input(INPUT_NAME, window)
    binding.bind_ortvalue_output(OUTPUT_NAME, probabilities)

    def call() -> None:
        session.run_with_iobinding(binding)

    return call, lambda: binding.copy_outputs_to_cpu()[0]


def cuda_tf32(session: ort.InferenceSession) -> bool:
    """Whether the session's CUDA EP may use TF32 for float32 matmuls (ORT's ``use_tf32`` option)."""
    return session.get_provider_options().get(CUDA, {}).get("use_tf32", "0") not in ("0", "false", "False")


def require_cuda() -> None:
    """Exit with a clear message when torch or onnxruntime cannot run on CUDA here."""
    if not torch.cuda.is_available():
        raise SystemExit(
            f"error: --device cuda, but torch {torch.__version__} sees no CUDA device (built for CUDA: "
            f"{torch.version.cuda}). Run on a GPU machine with a CUDA build of torch, or use --device cpu."
        )
    available = ort.get_available_providers()
    if CUDA not in available:
        raise SystemExit(
            f"error: --device cuda, but this onnxruntime {ort.__version__} build offers {available}, not "
            f"{CUDA}. Install onnxruntime-gpu (never alongside onnxruntime), or use --device cpu."
        )


def require_provider(label: str, used: str, device: str) -> None:
    """Refuse GPU figures when ONNX Runtime silently fell back to the CPU."""
    if device == "cuda" and used != CUDA:
        raise SystemExit(
            f"error: {label} runs on {used}, not {CUDA}: ONNX Runtime fell back (CUDA/cuDNN libraries "
            "missing or mismatched; see its warnings above). Refusing to print GPU figures."
        )


def print_table(rows: list[Timing], baseline_p50: float) -> None:
    for r in rows:
        print(
            f"  {r.method:<52}{r.batch:>6}{len(r.ns):>7}{r.p50_ms:>10.3f}{r.p99_ms:>10.3f}{r.mean_ms:>10.3f}"
            f"{r.windows_per_s:>12.0f}{r.cpu_ms_per_call:>10.3f}{baseline_p50 / r.p50_ms:>9.2f}x"
        )


@dataclass(frozen=True)
class Method:
    """One timed path: key in the results, table label, the call, and whether to check its output."""

    key: str
    label: str
    call: Callable[[], object]
    output: Callable[[], np.ndarray] | None  # None: torch itself (the reference)


def methods_for_batch(
    graph: InferenceGraph,
    session: ort.InferenceSession,
    engine: InferenceEngine,
    ref: str,
    x: np.ndarray,
    n_classes: int,
    device: str,
) -> list[Method]:
    """The paths timed at one batch size; the first is the torch reference the others are compared to."""
    x_torch = torch.from_numpy(x)
    provider = session.get_providers()[0].removesuffix("ExecutionProvider")

    def ort_call() -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    def engine_call() -> np.ndarray:
        return engine.predict(ref, MODALITY, x)

    runs = -(-len(x) // engine.max_batch)  # predict splits a request into runs of <= max_batch windows
    engine_label = "ort engine.predict (service path" + (f", {runs} runs)" if runs > 1 else ")")

    if device == "cpu":
        return [
            Method("torch", f"torch eager ({torch.get_num_threads()} threads)", lambda: graph(x_torch), None),
            Method("ort", f"ort session.run ({provider})", ort_call, ort_call),
            Method("engine", engine_label, engine_call, engine_call),
        ]
    cuda = torch.device("cuda")
    x_device = x_torch.to(cuda)

    def torch_device_call() -> torch.Tensor:
        out = graph(x_device)
        torch.cuda.synchronize()
        return out

    bound, read = iobinding_call(session, x, n_classes, "cuda")
    return [
        # host in, host out: what the service does with numpy windows (.cpu() synchronises)
        Method("torch", "torch eager (cuda, host in/out)", lambda: graph(x_torch.to(cuda)).cpu(), None),
        Method("ort", f"ort session.run ({provider}, host in/out)", ort_call, ort_call),
        Method("engine", engine_label, engine_call, engine_call),
        Method("torch_device", "torch eager, tensors on device", torch_device_call, None),
        Method("iobinding", "ort IO binding, on device", bound, lambda: (bound(), read())[1]),
    ]


def benchmark_graph(size: GraphSize, args: argparse.Namespace, workdir: Path) -> dict[str, dict[int, Timing]]:
    """Export, check parity, time every method at every batch size; prints the tables, returns the timings."""
    graph, bundle, export_parity = build_and_export(size, workdir)
    path = bundle.graph_path(MODALITY)
    n_classes = len(size.class_names)
    dim, seq_len = size.config.modality(MODALITY).dim, size.config.seq_len
    providers = [CUDA, CPU] if args.device == "cuda" else [CPU]
    session = ort_session(path, providers)
    require_provider("ort session.run", session.get_providers()[0], args.device)
    if args.device == "cuda":
        # Same float32 matmul mode as the ORT session, so both compute the same thing.
        torch.backends.cuda.matmul.allow_tf32 = cuda_tf32(session)
    graph = graph.to(args.device)

    print(
        f"\n## graph {size.name}: {size.describe()}; seeded random weights (timing does not depend on them)"
    )
    print(f"  exported {path.name} (opset {bundle.manifest.opset}): {op_histogram(onnx.load(str(path)))}")
    print(f"  after ORT optimisation (service options, CPU EP): {optimised_op_histogram(path, workdir)}")
    print(
        "  export_bundle parity (max abs diff): "
        + ", ".join(f"{k} {v:.1e}" for k, v in export_parity.items())
    )
    tf32 = (
        f", CUDA use_tf32={cuda_tf32(session)} (torch allow_tf32 set to match)"
        if args.device == "cuda"
        else ""
    )
    print(f"  ORT session providers {session.get_providers()}{tf32}")

    timings: dict[str, dict[int, Timing]] = collections.defaultdict(dict)
    rng = np.random.default_rng(0)
    with InferenceEngine(ModelRepository(workdir), providers=providers) as engine:
        loaded = engine.load(bundle.ref)
        require_provider("ort engine.predict", loaded.providers[MODALITY], args.device)
        print(
            f"  engine: provider {loaded.providers[MODALITY]}, max_batch {engine.max_batch}, "
            f"max_wait_s {engine.max_wait_s} (service defaults)"
        )
        print(
            f"  {'method':<52}{'batch':>6}{'calls':>7}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'windows/s':>12}{'cpu ms':>10}{'speed-up':>9}"
        )
        for batch in args.batch_sizes:
            budget = Budget.for_batch(batch, args)
            x = np.ascontiguousarray(rng.standard_normal((batch, seq_len, dim)), dtype=np.float32)
            methods = methods_for_batch(graph, session, engine, bundle.ref, x, n_classes, args.device)
            with torch.inference_mode():
                expected = methods[0].call().cpu().numpy()
                parity = {m.key: check_parity(m.label, m.output(), expected) for m in methods if m.output}
                for m in methods:
                    timings[m.key][batch] = time_calls(m.label, batch, m.call, budget)
            print_table([timings[m.key][batch] for m in methods], timings["torch"][batch].p50_ms)
            print(
                f"  parity at batch {batch} (max abs diff vs torch): "
                + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
            )
            if args.sweep:
                sweep(graph, path, providers, x, expected, timings, budget=budget, device=args.device)
    return timings


def _set_config(key: str, value: str) -> Callable[[ort.SessionOptions], None]:
    return lambda options: options.add_session_config_entry(key, value)


def _spin_and_stop(options: ort.SessionOptions) -> None:
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    # Threads spin during a run but stop when it returns, so no core burns between sporadic calls.
    options.add_session_config_entry("session.force_spinning_stop", "1")


# Each variant is ONE change to the service's session options.
SWEEP_VARIANTS: dict[str, Callable[[ort.SessionOptions], None]] = {
    "intra_op_num_threads=1": lambda o: setattr(o, "intra_op_num_threads", 1),
    "allow_spinning=1": _set_config("session.intra_op.allow_spinning", "1"),
    "allow_spinning=1 + force_spinning_stop=1": _spin_and_stop,
    "graph opt EXTENDED": lambda o: setattr(
        o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ),
    "execution_mode PARALLEL": lambda o: setattr(o, "execution_mode", ort.ExecutionMode.ORT_PARALLEL),
}


def sweep(
    graph: InferenceGraph,
    path: Path,
    providers: list[str],
    x: np.ndarray,
    expected: np.ndarray,
    timings: dict[str, dict[int, Timing]],
    *,
    budget: Budget,
    device: str,
) -> None:
    """Time ORT session-option variants, IO binding and torch on 1 thread; prints them under the main rows."""
    ort.set_default_logger_severity(3)  # overriding a config entry logs a warning per session
    batch, n_classes = len(x), expected.shape[1]
    rows = [timings["ort"][batch]]
    for label, tweak in SWEEP_VARIANTS.items():
        session = ort_session(path, providers, tweak)
        check_parity(label, session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], expected)
        call = lambda s=session: s.run([OUTPUT_NAME], {INPUT_NAME: x})  # noqa: E731
        rows.append(time_calls(f"sweep: ort {label}", batch, call, budget))
        del session, call  # its thread pool must not spin while the next variant is timed
    ort.set_default_logger_severity(2)
    if device == "cpu":
        bound, read = iobinding_call(ort_session(path, providers), x, n_classes, "cpu")
        bound()
        check_parity("ort IO binding", read(), expected)
        rows.append(time_calls("sweep: ort IO binding (in+out bound once)", batch, bound, budget))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        x_torch = torch.from_numpy(x)
        with torch.inference_mode():
            rows.append(time_calls("sweep: torch eager (1 thread)", batch, lambda: graph(x_torch), budget))
        torch.set_num_threads(threads)
    print_table(rows, timings["torch"][batch].p50_ms)


def summary_lines(name: str, timings: dict[str, dict[int, Timing]], device: str) -> list[str]:
    """The target lines for one graph (batch 1), plus the engine overhead."""
    prefix = "" if name == "reference" else f"{name}: "
    if 1 not in timings["ort"]:
        return [f"{prefix}ratio=n/a (batch 1 not timed)", f"{prefix}ort_p50_ms=n/a (batch 1 not timed)"]
    torch_p50, ort_p50 = timings["torch"][1].p50_ms, timings["ort"][1].p50_ms
    ratio = torch_p50 / ort_p50
    note = " (targets are for CPU, 2 cores; informational on cuda)" if device == "cuda" else ""
    overhead = timings["engine"][1].p50_ms - ort_p50
    return [
        f"{name}: engine.predict adds {overhead * 1e3:+.0f} us p50 at batch 1 over a bare session.run{note}",
        f"{prefix}ratio={ratio:.2f}x target={TARGET_RATIO:g}x {'MET' if ratio >= TARGET_RATIO else 'NOT MET'}",
        f"{prefix}ort_p50_ms={ort_p50:.3f} target={TARGET_P50_MS:g}ms "
        f"{'MET' if ort_p50 <= TARGET_P50_MS else 'NOT MET'}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=parse_batch_sizes, default=(1, 64), help="e.g. 1,64,1024,4096")
    parser.add_argument("--graphs", type=parse_graphs, default=("demo", "reference"), help="demo,reference")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: torch on the GPU and ORT with CUDAExecutionProvider (refuses a CPU fallback)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch threads (default: all cores); ORT keeps the service's own setting",
    )
    parser.add_argument("--iters", type=int, default=2000, help="timed calls per method at batch 1")
    parser.add_argument("--iters-batched", type=int, default=200, help="timed calls per method at batch > 1")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=6.0,
        help=f"stop timing a method after this many s (once it has {MIN_CALLS} calls); 0 = no limit",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="sleep before each timed call, e.g. 20 for sporadic live-stream calls (default 0: back to back)",
    )
    parser.add_argument("--sweep", action="store_true", help="also time ORT session-option variants")
    args = parser.parse_args()
    if args.threads < 1 or args.iters < 1 or args.iters_batched < 1:
        parser.error(
            f"--threads, --iters and --iters-batched must be >= 1, got {args.threads}, "
            f"{args.iters} and {args.iters_batched}."
        )
    if not args.max_seconds >= 0:
        parser.error(f"--max-seconds must be >= 0 (0 = no limit), got {args.max_seconds}.")
    if not args.gap_ms >= 0:
        parser.error(f"--gap-ms must be >= 0, got {args.gap_ms}.")
    if args.device == "cuda":
        require_cuda()
    torch.set_num_threads(args.threads)
    sizes = graph_sizes(args.graphs)
    sizes.sort(key=lambda s: s.name == "reference")  # reference last: its lines end the output

    options = service_session_options()
    threads = options.intra_op_num_threads or "0 = ORT default, one per physical core"
    entries = ", ".join(f"{key} {config_entry(options, key)}" for key in SPIN_KEYS)
    print(f"# {cpu_name()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}")
    print(
        f"# torch {torch.__version__} ({args.device}, {torch.get_num_threads()} threads), onnxruntime "
        f"{ort.__version__} (available providers {ort.get_available_providers()})"
    )
    print(
        f"# ORT session options from service.engine: graph optimisation {options.graph_optimization_level.name}, "
        f"intra_op_num_threads {threads}, {entries}, execution mode {options.execution_mode.name}"
    )
    if args.device == "cuda":
        print(f"# GPU: {torch.cuda.get_device_name(0)}")
    print(
        f"# calls per method: {args.iters} at batch 1, {args.iters_batched} above, after 10 % untimed warm-up, "
        f"at most {args.max_seconds:g} s each (once {MIN_CALLS} are timed), "
        + (f"{args.gap_ms:g} ms sleep before each call; " if args.gap_ms else "back to back; ")
        + "wall time per call with perf_counter_ns; cpu ms = process CPU time per call (all threads, gaps "
        "included); speed-up = p50 of the first row (torch eager) / p50 of the row"
    )
    lines = []
    with tempfile.TemporaryDirectory(prefix="m2s-bench-inference-") as tmp:
        for size in sizes:
            timings = benchmark_graph(size, args, Path(tmp))
            lines += summary_lines(size.name, timings, args.device)
    print()
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
