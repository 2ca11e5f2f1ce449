"""Live calibration of an unseen person, measured end to end: accuracy before/after, fit time, latency during fits.

For each simulated subject the demo population bundle never saw (0, 1, 2 by default):

- ``m2s-serve`` runs as its own process (the demo bundle, a temporary calibrated repository);
- ``clients.simulator.Simulator`` plays the subject (EEG, gaze, ECG) with ``--calibration-trials K``
  trials per class first (markers with ``"phase": "calibration"``), then test trials; it waits for its
  consumers so the calibration sees the first onset;
- four sets of streams on the same outlets, attached over REST:
  ``base`` (the population model, never calibrated: the reference), ``own`` (a calibration fitted with
  each modality's own head, activated), ``cross`` (a calibration fitted on EEG only, its head serving eye
  and ECG through their embedding graphs, activated), and ``--load-streams`` extra EEG streams on the
  base model that are never calibrated (latency probes);
- both calibrations listen to the experiment's marker stream; when the first test trial starts they are
  fitted one after the other (``POST /calibrations/{id}/fit``, ``activate``); a WebSocket client records
  every state.

Reported per subject and modality: balanced accuracy on the test trials of ``base``, ``own`` and ``cross``
(states whose whole context lies inside one test trial), the validation (leave-one-trial-out) of each fit,
``fit_s`` of each fit, and p99 ``latency_ms`` of the probe streams' states emitted during the fits versus
all other probe states. The goals (CALIBRATION.md §3, issue 16): own ≥ base + 10 points for EEG and eye;
fit ≤ 2 s for 10 minutes of calibration data (``--trial-s 100`` with K = 2 gives 10 minutes); p99 during
fits ≤ 2× p99 otherwise. Last line: ``gain_eeg= gain_eye= fit_s= p99_ratio=``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time

import httpx
import numpy as np
import websockets

from clients.service_process import ServiceProcess
from clients.simulator import Simulator
from synthetic import SyntheticConfig

CLASSES = ("negative", "neutral", "positive")
MODALITIES = ("eeg", "eye", "ecg")
CONTEXT_S = 18.0  # the longest live window (eye: 18 s of signal)


def _balanced_accuracy(truth, pred) -> float:
    truth, pred = np.asarray(truth), np.asarray(pred)
    recalls = [np.mean(pred[truth == c] == c) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan")


def score_sets(
    states: list[dict], sim, sets: dict[str, dict[str, str]], keep
) -> dict[str, tuple[float, int]]:
    """``"<set>/<modality>"`` -> (balanced accuracy, states scored) of the states of each set of streams
    (``sets[set][modality] = stream id``) that ``keep(state, set)`` accepts and whose whole context lies in one
    trial of the simulator's ground truth."""
    where = {sid: (name, m) for name, ms in sets.items() for m, sid in ms.items()}
    scored: dict[tuple[str, str], tuple[list, list]] = {}
    for s in states:
        key = where.get(s["stream_id"])
        if key is None or not keep(s, key[0]):
            continue
        label = sim.label_at(s["lsl_time"])
        if label is None or sim.label_at(s["lsl_time"] - CONTEXT_S) != label:
            continue
        truth, pred = scored.setdefault(key, ([], []))
        truth.append(label)
        pred.append(s["label"])
    return {
        f"{name}/{m}": (
            _balanced_accuracy(*scored.get((name, m), ([], []))),
            len(scored.get((name, m), ([],))[0]),
        )
        for name, ms in sets.items()
        for m in ms
    }


async def _collect(url: str, states: list, stop) -> None:
    async with websockets.connect(url) as ws:
        while not stop():
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except asyncio.TimeoutError:
                continue
            if msg.get("type") == "state":
                states.append(msg["state"])


def run_subject(subject: int, args) -> dict:
    """One subject: serve, simulate, calibrate twice, score; returns the measurements."""
    tag = f"calbench{os.getpid()}s{subject}"
    sim = Simulator(
        SyntheticConfig(trial_duration_s=args.trial_s),
        subject=subject,
        modalities=MODALITIES,
        calibration_trials=args.calibration_trials,
        speed=args.speed,
        source_id_prefix=tag,
        wait_for_consumers_s=60.0,
    )
    repo = tempfile.mkdtemp(prefix="m2s-calbench-")
    states: list[dict] = []
    options = ["--log-level", "warning", "--calibrated-repository", repo, "--stale-after", "30"]
    with (
        ServiceProcess(options, ready_timeout_s=90) as server,
        httpx.Client(base_url=server.url, timeout=120.0) as http,
    ):
        sets: dict[str, dict[str, str]] = {}
        for name in ("base", "own", "cross"):
            sets[name] = {}
            for m in MODALITIES:
                r = http.post("/streams", json={"modality": m, "source_id": sim.source_ids[m]})
                r.raise_for_status()
                sets[name][m] = r.json()["id"]
        probes = []
        for _ in range(args.load_streams):
            r = http.post("/streams", json={"modality": "eeg", "source_id": sim.source_ids["eeg"]})
            r.raise_for_status()
            probes.append(r.json()["id"])
        markers = {"markers": {"source_id": sim.source_ids["markers"]}}
        cals = {}
        for name in ("own", "cross"):
            r = http.post("/calibrations", json={"participant": f"s{subject}-{name}",
                                                 "streams": list(sets[name].values()), "labels": markers})  # fmt: skip
            r.raise_for_status()
            cals[name] = r.json()["id"]
        fits: dict[str, dict] = {}
        fit_windows: list[tuple[float, float]] = []  # wall-time spans of the fits
        step = {"fitted_at": None}

        def stop() -> bool:
            if step["fitted_at"] is None:
                cal = http.get(f"/calibrations/{cals['own']}").json()
                if any(e["phase"] == "test" for e in cal["events"]):
                    for name, train in (("own", None), ("cross", "eeg")):
                        t0 = time.time()
                        r = http.post(f"/calibrations/{cals[name]}/fit",
                                      json={"train_modality": train, "activate": True})  # fmt: skip
                        fit_windows.append((t0, time.time()))
                        if r.status_code != 200:
                            raise RuntimeError(f"fit {name} failed: {r.status_code} {r.text}")
                        fits[name] = r.json()
                    step["fitted_at"] = time.monotonic()
                return False
            return time.monotonic() > step["fitted_at"] + args.test_trials * args.trial_s / args.speed

        with sim:
            asyncio.run(_collect(server.url.replace("http", "ws", 1) + "/ws", states, stop))
    if sim.error is not None:
        raise RuntimeError(f"the simulator failed: {sim.error}")
    first_test = next(m.lsl_time for m in sim.labels_timeline if m.phase == "test")

    def scored_state(state: dict, set_name: str) -> bool:
        if state["lsl_time"] - CONTEXT_S < first_test:
            return False
        return set_name == "base" or state["model"]["name"].endswith(
            f"-s{subject}-{set_name}"
        )  # after the swap

    accuracy = score_sets(states, sim, sets, scored_state)
    during, outside = [], []
    probe_ids = set(probes) | set(sets["base"].values())
    for s in states:
        if s["stream_id"] in probe_ids and s["latency_ms"] is not None:
            inside = any(a <= s["wall_time"] <= b for a, b in fit_windows)
            (during if inside else outside).append(s["latency_ms"])
    return {
        "subject": subject,
        "accuracy": accuracy,
        "fits": fits,
        "latency_during": during,
        "latency_outside": outside,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", default="0,1,2", help="unseen synthetic subjects (default: 0,1,2)")
    parser.add_argument(
        "--calibration-trials", type=int, default=2, help="labelled trials per class (default: 2)"
    )
    parser.add_argument("--test-trials", type=int, default=6, help="test trials after the fits (default: 6)")
    parser.add_argument("--trial-s", type=float, default=30.0, help="trial length, s (default: 30)")
    parser.add_argument("--speed", type=float, default=4.0, help="playback speed (default: 4)")
    parser.add_argument("--load-streams", type=int, default=12, help="extra EEG probe streams (default: 12)")
    args = parser.parse_args()
    subjects = [int(s) for s in args.subjects.split(",")]
    results = []
    for subject in subjects:
        t0 = time.monotonic()
        res = run_subject(subject, args)
        results.append(res)
        print(f"subject {subject} ({time.monotonic() - t0:.0f} s)")  # noqa: T201
        for key, (bacc, n) in res["accuracy"].items():
            print(f"  {key:<10} balanced accuracy {bacc:.3f} over {n} states")  # noqa: T201
        for name, fit in res["fits"].items():
            v = fit["validation"]
            per = ", ".join(
                f"{m} {d['balanced_accuracy']:.3f} (head {d['head']}"
                + (
                    f", own {d['own_head_balanced_accuracy']:.3f}"
                    if d.get("own_head_balanced_accuracy") is not None
                    else ""
                )
                + ")"
                for m, d in v["per_modality"].items()
            )
            print(f"  fit {name}: {fit['model']['name']}:{fit['model']['version']} in {fit['fit_s']:.2f} s; "
                  f"trials {v['n_trials']}; validation {per}")  # fmt: skip  # noqa: T201

    def mean(key):
        return float(np.nanmean([r["accuracy"][key][0] for r in results]))

    print("mean over subjects:")  # noqa: T201
    for m in MODALITIES:
        print(
            f"  {m}: base {mean(f'base/{m}'):.3f}  own {mean(f'own/{m}'):.3f}  cross (EEG head) {mean(f'cross/{m}'):.3f}"
        )  # noqa: T201
    during = np.concatenate([r["latency_during"] for r in results]) if results else np.empty(0)
    outside = np.concatenate([r["latency_outside"] for r in results]) if results else np.empty(0)
    p99_d = float(np.percentile(during, 99)) if len(during) else float("nan")
    p99_o = float(np.percentile(outside, 99)) if len(outside) else float("nan")
    fit_s = max(f["fit_s"] for r in results for f in r["fits"].values())
    print(
        f"probe latency p99: during fits {p99_d:.1f} ms ({len(during)} states), otherwise {p99_o:.1f} ms ({len(outside)} states)"
    )  # noqa: T201
    minutes = args.calibration_trials * len(CLASSES) * args.trial_s / 60
    print(f"calibration data per fit: {minutes:.1f} min; slowest fit {fit_s:.2f} s")  # noqa: T201
    gain = {m: 100 * (mean(f"own/{m}") - mean(f"base/{m}")) for m in ("eeg", "eye")}
    print(
        f"gain_eeg={gain['eeg']:+.1f} gain_eye={gain['eye']:+.1f} fit_s={fit_s:.2f} p99_ratio={p99_d / p99_o:.2f}"
    )  # noqa: T201


if __name__ == "__main__":
    main()
