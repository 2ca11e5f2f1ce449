"""POST /v2/models/{name}/infer at batch 64 from tritonclient vs the in-process engine, windows/s.

The service runs as its own process (``m2s-serve`` on a free loopback port, default demo bundle, no
streams; started as ``benchmarks/predict_load.py`` starts it). tritonclient's HTTP client
(``tritonclient.http.InferenceServerClient``, a KServe v2 client this project did not write) sends
batches of ``--batch`` raw EEG feature windows (demo EEG graph, T x D = 5 x 310, float32) back to back,
``modality=eeg`` as the request parameter, and reads ``probabilities``; ``--clients`` such clients run
at once (threads, one connection each). Two tensor encodings, each timed for ``--duration`` s after one
warm-up request per client:

- ``binary``: tritonclient's default (``set_data_from_numpy(..., binary_data=True)``, binary outputs):
  Triton's binary tensor data extension, float32 bytes after a small JSON header;
- ``json``: ``binary_data=False``, the plain protocol: 99,200 numbers in a ~2 MB JSON body. The client's
  own encoding of it (``.item()`` per value, then rapidjson) is timed separately and printed: it is
  part of every JSON request's wall time.

Baseline, in the same run on the same batches: ``InferenceEngine.predict`` in this process (same bundle,
same providers) on the same raw windows, normalised with the manifest statistics as the route does,
fed from the same number of threads. ``ratio`` = engine windows/s / infer windows/s (1.0 = HTTP costs
nothing). The issue's goal: ratio <= 1.3 at batch 64 (binary, the encoding tritonclient uses by default).

Usage: python benchmarks/infer.py [--batch 64] [--clients 1,2] [--duration 5]
The last line is ``infer_windows_per_s=X engine_windows_per_s=Y ratio=R target=1.3 MET|NOT MET``
(binary, one client).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # predict_load, when run from elsewhere

import tritonclient.http as triton  # noqa: E402
from predict_load import running_service  # noqa: E402

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository  # noqa: E402
from service.engine import InferenceEngine  # noqa: E402

MODALITY = "eeg"
TARGET = 1.3


def windows_per_s(work: Callable[[int], int], clients: int, duration_s: float) -> float:
    """Run ``work(client_index) -> windows`` back to back in ``clients`` threads for ``duration_s``."""
    done = [0] * clients
    stop = time.perf_counter() + duration_s

    def loop(i: int) -> None:
        work(i)  # warm-up, not counted
        while time.perf_counter() < stop:
            done[i] += work(i)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--clients", default="1,2", help="concurrent clients, comma-separated levels")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    repository = ModelRepository(DEFAULT_REPOSITORY)
    engine = InferenceEngine(repository, providers=["CPUExecutionProvider"])
    loaded = engine.load(DEMO_BUNDLE)
    graph = loaded.bundle.manifest.graphs[MODALITY]
    rng = np.random.default_rng(0)
    mean, std = np.asarray(graph.normalisation.mean), np.asarray(graph.normalisation.std)
    batches = [  # raw features at the manifest's scale, as a client would send them
        (mean + std * rng.normal(size=(args.batch, graph.seq_len, graph.dim))).astype(np.float32)
        for _ in range(8)
    ]

    t0 = time.perf_counter()
    values = [v.item() for v in batches[0].ravel()]
    t1 = time.perf_counter()
    import rapidjson

    rapidjson.dumps({"inputs": [{"name": "window", "data": values}]})
    t2 = time.perf_counter()
    print(
        f"batch {args.batch} x {graph.seq_len} x {graph.dim} float32; tritonclient's JSON encoding of one batch: "
        f".item() list {1e3 * (t1 - t0):.1f} ms + rapidjson.dumps {1e3 * (t2 - t1):.1f} ms"
    )

    def engine_work(i: int) -> int:
        x = batches[i % len(batches)]
        return len(engine.predict(loaded.ref, MODALITY, graph.normalisation.apply(x.astype(np.float64))))

    results: dict[tuple[str, int], float] = {}
    print(f"{'path':<8}{'clients':>8}{'windows/s':>12}{'ratio':>8}")
    with running_service(["CPUExecutionProvider"]) as (url, _proc):
        host = url.removeprefix("http://")
        for clients in levels:
            results["engine", clients] = windows_per_s(engine_work, clients, args.duration)
            print(f"{'engine':<8}{clients:>8}{results['engine', clients]:>12.0f}{'':>8}")
            for encoding in ("binary", "json"):
                binary = encoding == "binary"
                conns = [triton.InferenceServerClient(host, network_timeout=60) for _ in range(clients)]
                counter = [0] * clients

                def infer_work(i: int, conns=conns, counter=counter, binary=binary) -> int:
                    x = batches[counter[i] % len(batches)]
                    counter[i] += 1
                    window = triton.InferInput("window", list(x.shape), "FP32")
                    window.set_data_from_numpy(x, binary_data=binary)
                    out = triton.InferRequestedOutput("probabilities", binary_data=binary)
                    result = conns[i].infer(
                        DEMO_BUNDLE, [window], outputs=[out], parameters={"modality": MODALITY}
                    )
                    return len(result.as_numpy("probabilities"))

                rate = windows_per_s(infer_work, clients, args.duration)
                for c in conns:
                    c.close()
                results[encoding, clients] = rate
                ratio = results["engine", clients] / rate
                print(f"{encoding:<8}{clients:>8}{rate:>12.0f}{ratio:>8.2f}")
    engine.close()
    infer, base = results["binary", levels[0]], results["engine", levels[0]]
    ratio = base / infer
    print(
        f"infer_windows_per_s={infer:.0f} engine_windows_per_s={base:.0f} ratio={ratio:.2f} target={TARGET} "
        f"{'MET' if ratio <= TARGET else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
