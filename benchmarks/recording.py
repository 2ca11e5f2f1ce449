"""What recording costs the live service: CPU per recorded EEG stream, and whether any live state is lost.

``m2s-serve`` runs as its own process (the demo bundle); the LSL simulator plays one 62-channel 200-Hz EEG
outlet in real time, and ``--streams`` EEG streams are attached to it (each its own inlet, worker and
feature pipeline, as separate amplifiers would be). Phases of ``--phase-s`` seconds alternate, ``--rounds``
times: *baseline* (no recording; the baseline in the same run) and *recording* (one recording of every
stream, ``POST /recordings`` … ``DELETE``). Per phase: the service process's CPU time from
``/proc/<pid>/stat`` over the phase's wall time, the states it emitted per stream (from
``GET /streams``: expected one per hop, 2 s), and the bytes written.

Reported: CPU (% of one core) with and without recording, the difference per recorded stream, states per
stream per phase against the expected count, MB/s written. Goal (issue 17): ≤ 5 % CPU per recorded EEG
stream; no dropped live state. Last line: ``cpu_per_stream_pct= states_ratio= target=5``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import httpx
import numpy as np

from clients.service_process import ServiceProcess
from clients.simulator import Simulator
from synthetic import SyntheticConfig

HOP_S = 2.0  # the demo bundle's EEG hop


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _states(http: httpx.Client, ids: list[str]) -> np.ndarray:
    data = {s["id"]: s["n_states"] for s in http.get("/streams").json()["data"]}
    return np.array([data[i] for i in ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", type=int, default=4, help="EEG streams attached and recorded (default 4)"
    )
    parser.add_argument("--phase-s", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="baseline/recording pairs (default 2)")
    args = parser.parse_args()
    sim = Simulator(
        SyntheticConfig(trial_duration_s=60.0), subject=0, modalities=("eeg",), speed=1.0,
        source_id_prefix=f"recbench{os.getpid()}",
    )  # fmt: skip
    folder = tempfile.mkdtemp(prefix="m2s-recbench-")
    options = ["--log-level", "warning", "--recordings-dir", folder, "--stale-after", "30"]
    rows = []
    with ServiceProcess(options) as server, httpx.Client(base_url=server.url, timeout=30) as http, sim:
        ids = []
        for _ in range(args.streams):
            r = http.post("/streams", json={"modality": "eeg", "source_id": sim.source_ids["eeg"]})
            r.raise_for_status()
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 60
        while min(_states(http, ids)) < 3:  # connected and past the first windows
            if time.monotonic() > deadline:
                raise RuntimeError("the streams gave no states within 60 s")
            time.sleep(0.5)
        pid = server.process.pid
        for _ in range(args.rounds):
            for phase in ("baseline", "recording"):
                rid = None
                if phase == "recording":
                    r = http.post("/recordings", json={"streams": ids})
                    r.raise_for_status()
                    rid = r.json()["id"]
                s0, c0, t0 = _states(http, ids), _cpu_s(pid), time.monotonic()
                time.sleep(args.phase_s)
                s1, c1, t1 = _states(http, ids), _cpu_s(pid), time.monotonic()
                written = 0
                if rid is not None:
                    rec = http.delete(f"/recordings/{rid}").json()
                    if rec["state"] != "closed":
                        raise RuntimeError(f"the recording ended {rec['state']}: {rec['error']}")
                    written = rec["bytes"]
                rows.append(
                    (phase, 100 * (c1 - c0) / (t1 - t0), (s1 - s0) / ((t1 - t0) / HOP_S), written / (t1 - t0))
                )
    if sim.error is not None:
        raise RuntimeError(f"the simulator failed: {sim.error}")
    print(f"{args.streams} EEG streams (62 ch @ 200 Hz, real time), phases of {args.phase_s:g} s")  # noqa: T201
    print(f"{'phase':<10} {'cpu %':>7} {'states/expected (min..max over streams)':>40} {'MB/s':>7}")  # noqa: T201
    for phase, cpu, ratio, rate in rows:
        print(f"{phase:<10} {cpu:7.2f} {ratio.min():19.3f} .. {ratio.max():<18.3f} {rate / 1e6:7.3f}")  # noqa: T201
    base = np.mean([r[1] for r in rows if r[0] == "baseline"])
    rec = np.mean([r[1] for r in rows if r[0] == "recording"])
    per_stream = (rec - base) / args.streams
    ratio = min(
        min(r[2].min() for r in rows if r[0] == "recording")
        / min(r[2].min() for r in rows if r[0] == "baseline"),
        1.0,
    )
    print(
        f"cpu without recording {base:.2f} %, with {rec:.2f} %: {per_stream:+.2f} % of a core per recorded stream"
    )  # noqa: T201
    verdict = "MET" if per_stream <= 5.0 else "NOT met"
    print(f"cpu_per_stream_pct={per_stream:.2f} states_ratio={ratio:.3f} target=5 {verdict}")  # noqa: T201


if __name__ == "__main__":
    main()
