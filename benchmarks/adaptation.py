"""Adapting M2S to a new person, measured live: uncalibrated vs head-only calibration vs adapted encoders.

For each simulated subject the demo population bundle never saw (0, 1, 2 by default):

- ``m2s-serve`` runs as its own process (the demo bundle; temporary calibrated repository and recordings
  folder; it polls its repositories every 0.5 s);
- ``clients.simulator.Simulator`` plays the subject (EEG, gaze, ECG) with K labelled calibration trials per
  class (markers with phases), then test trials;
- a calibration by markers with ``"record": true`` collects and records the calibration block; at the first
  test trial it is fitted and activated (head-only: version 1 of ``m2s-synthetic-demo-s<k>``), which closes
  the recording;
- ``m2s-train adapt`` (its own process, default options, ``--device auto``) adapts the encoders on that
  recording and writes version 2; the calibrated streams follow the name and switch by themselves;
- three sets of streams read the same outlets: ``uncalibrated`` (the population bundle, pinned),
  ``head-only`` (version 1, pinned) and ``adapted`` (following); all three are scored on the same
  ``--test-trials`` trials after the switch (states whose whole context lies inside one trial).

Reported per subject and modality: balanced accuracy of the three, the adapt run's time and its own held-out
table (test-phase trials that happened to be recorded before the fit closed the recording). Goal (issue 17):
adapted ≥ head-only for EEG and eye. Last line: ``adapted_minus_head_eeg= adapted_minus_head_eye= adapt_s=``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from calibration import _collect, score_sets  # benchmarks/calibration.py, the sibling script

from clients.service_process import ServiceProcess
from clients.simulator import Simulator
from synthetic import SyntheticConfig

MODALITIES = ("eeg", "eye", "ecg")
SETS = ("uncalibrated", "head-only", "adapted")


def run_subject(subject: int, args) -> dict:
    """One subject: serve, simulate, calibrate with a recording, adapt, score after the switch."""
    sim = Simulator(
        SyntheticConfig(trial_duration_s=args.trial_s),
        subject=subject,
        modalities=MODALITIES,
        calibration_trials=args.calibration_trials,
        speed=args.speed,
        source_id_prefix=f"adaptbench{os.getpid()}s{subject}",
        wait_for_consumers_s=60.0,
    )
    work = Path(tempfile.mkdtemp(prefix="m2s-adaptbench-"))
    calibrated, recordings = work / "calibrated", work / "recordings"
    name = f"m2s-synthetic-demo-s{subject}"
    options = ["--log-level", "warning", "--calibrated-repository", calibrated, "--recordings-dir", recordings,
               "--stale-after", "30", "--model-poll-interval", "0.5"]  # fmt: skip
    states: list[dict] = []
    step: dict = {"stage": "calibrating"}
    with ServiceProcess(options) as server, httpx.Client(base_url=server.url, timeout=120.0) as http:
        sets: dict[str, dict[str, str]] = {s: {} for s in SETS}

        def attach(set_name: str, model: str | None) -> None:
            for m in MODALITIES:
                body = {"modality": m, "source_id": sim.source_ids[m], **({"model": model} if model else {})}
                r = http.post("/streams", json=body)
                r.raise_for_status()
                sets[set_name][m] = r.json()["id"]

        attach("adapted", None)  # follows the default model, then the calibrated name after activate
        attach("uncalibrated", "m2s-synthetic-demo:1")
        r = http.post("/calibrations", json={"participant": f"s{subject}", "streams": list(sets["adapted"].values()),
                                             "labels": {"markers": {"source_id": sim.source_ids["markers"]}},
                                             "record": True})  # fmt: skip
        r.raise_for_status()
        cid, rid = r.json()["id"], r.json()["recording_id"]

        def adapt(path: Path) -> None:
            command = [str(Path(sys.executable).parent / "m2s-train"), "adapt", str(path), "--base",
                       "m2s-synthetic-demo:1", "--participant", f"s{subject}", "--into", str(calibrated)]  # fmt: skip
            t0 = time.monotonic()
            step["adapt"] = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            step["adapt_s"] = time.monotonic() - t0

        def stop() -> bool:
            if step["stage"] == "calibrating":
                cal = http.get(f"/calibrations/{cid}").json()
                if any(e["phase"] == "test" for e in cal["events"]):
                    r = http.post(f"/calibrations/{cid}/fit", json={"activate": True})
                    if r.status_code != 200:
                        raise RuntimeError(f"the fit failed: {r.status_code} {r.text}")
                    step["fit"] = r.json()
                    attach("head-only", f"{name}:1")
                    rec = http.get(f"/recordings/{rid}").json()
                    step["thread"] = threading.Thread(target=adapt, args=(recordings / rec["file"],))
                    step["thread"].start()
                    step["stage"] = "adapting"
            elif step["stage"] == "adapting" and not step["thread"].is_alive():
                if step["adapt"].returncode != 0:
                    raise RuntimeError(f"m2s-train adapt failed: {step['adapt'].stderr[-3000:]}")
                step["stage"], step["adapted_at"] = "switching", time.monotonic()
            elif step["stage"] == "switching":
                ids = set(sets["adapted"].values())
                first = {}
                for s in states:
                    if s["stream_id"] in ids and s["model"] == {"name": name, "version": 2}:
                        first.setdefault(s["stream_id"], s["lsl_time"])
                if len(first) == len(ids):
                    step["stage"], step["after"] = "scoring", max(first.values())
                    step["until"] = time.monotonic() + args.test_trials * args.trial_s / args.speed
                elif time.monotonic() > step["adapted_at"] + 60:
                    raise RuntimeError("the service did not switch to the adapted version within 60 s")
            elif step["stage"] == "scoring":
                return time.monotonic() > step["until"]
            return False

        with sim:
            asyncio.run(_collect(server.url.replace("http", "ws", 1) + "/ws", states, stop))
    if sim.error is not None:
        raise RuntimeError(f"the simulator failed: {sim.error}")
    accuracy = score_sets(states, sim, sets, lambda state, _set: state["lsl_time"] >= step["after"])
    return {
        "subject": subject,
        "accuracy": accuracy,
        "adapt_s": step["adapt_s"],
        "adapt_out": step["adapt"].stdout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", default="0,1,2", help="unseen synthetic subjects (default: 0,1,2)")
    parser.add_argument(
        "--calibration-trials", type=int, default=2, help="labelled trials per class (default: 2)"
    )
    parser.add_argument(
        "--test-trials", type=int, default=6, help="trials scored after the switch (default: 6)"
    )
    parser.add_argument("--trial-s", type=float, default=30.0, help="trial length, s (default: 30)")
    parser.add_argument("--speed", type=float, default=8.0, help="playback speed (default: 8)")
    args = parser.parse_args()
    results = []
    for subject in (int(s) for s in args.subjects.split(",")):
        t0 = time.monotonic()
        res = run_subject(subject, args)
        results.append(res)
        print(f"subject {subject} ({time.monotonic() - t0:.0f} s; m2s-train adapt {res['adapt_s']:.1f} s)")  # noqa: T201
        for key, (bacc, n) in res["accuracy"].items():
            print(f"  {key:<16} balanced accuracy {bacc:.3f} over {n} states")  # noqa: T201
        print("  m2s-train adapt's own table:\n    " + res["adapt_out"].strip().replace("\n", "\n    "))  # noqa: T201

    def mean(key: str) -> float:
        return float(np.nanmean([r["accuracy"][key][0] for r in results]))

    print("mean over subjects (live, the same trials after the switch):")  # noqa: T201
    for m in MODALITIES:
        print("  " + f"{m}: " + "  ".join(f"{s} {mean(f'{s}/{m}'):.3f}" for s in SETS))  # noqa: T201
    diff = {m: 100 * (mean(f"adapted/{m}") - mean(f"head-only/{m}")) for m in ("eeg", "eye")}
    verdict = "MET" if min(diff.values()) >= 0 else "NOT met"
    adapt_s = max(r["adapt_s"] for r in results)
    print(f"adapted_minus_head_eeg={diff['eeg']:+.1f} adapted_minus_head_eye={diff['eye']:+.1f} "
          f"adapt_s={adapt_s:.1f} goal(adapted >= head-only, EEG and eye) {verdict}")  # fmt: skip  # noqa: T201


if __name__ == "__main__":
    main()
