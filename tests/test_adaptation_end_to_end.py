"""Issue 17 end to end: record a new person's calibration block through the service, adapt M2S to it with
``m2s-train adapt`` (CPU, the demo network), and let the running service pick the new version up.

The simulator plays subject 0 (never trained on) with K labelled calibration trials per class (markers with
phases), then test trials. The service (real app under uvicorn, polling its repositories every 0.5 s):

1. a calibration by markers with ``"record": true`` collects the calibration block and records it (EEG, eye,
   markers) to XDF; at the first test trial it is fitted and activated (head-only calibration, version 1 of
   ``m2s-synthetic-demo-sim-s0``), which also closes the recording;
2. ``m2s-train adapt`` runs as its own process on that recording and writes version 2 (adapted encoders);
3. the streams following ``m2s-synthetic-demo-sim-s0`` switch to version 2 by themselves (hot reload, no
   gap longer than a hop), and the following test trials are scored live.

Three sets of streams read the same outlets throughout: ``base`` (the population bundle, pinned),
``head-only`` (version 1, pinned after the fit) and ``adapted`` (the calibrated streams, following). All three
are scored on the same trials: those after the switch to version 2.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from clients.simulator import Simulator
from models.repository import ModelRepository
from service.app import create_app
from service.config import AttachRequest
from signals.recording import read_recording
from synthetic import SyntheticConfig
from tests.service.conftest import collect_states, make_settings, run_server, score_states

SPEED = 8.0
TRIAL_S = 30.0
HOP_S = 2.0
NAME = "m2s-synthetic-demo-sim-s0"


@pytest.mark.slow
def test_record_adapt_and_hot_reload_end_to_end(tmp_path):
    sim = Simulator(
        SyntheticConfig(trial_duration_s=TRIAL_S),
        subject=0,
        modalities=("eeg", "eye"),
        calibration_trials=3,
        speed=SPEED,
        source_id_prefix=f"adapt{os.getpid()}",
        wait_for_consumers_s=30.0,
    )
    calibrated, recordings = tmp_path / "calibrated", tmp_path / "recordings"
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in sim.modalities]
    settings = make_settings(
        attach=attach,
        calibrated_repository=calibrated,
        recordings_dir=recordings,
        stale_after_s=30.0,
        model_poll_interval_s=0.5,
    )
    states: list[dict] = []
    step: dict = {"stage": "calibrating"}
    with run_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as http:
        followed = {s["modality"]: s["id"] for s in http.get("/streams").json()["data"]}
        base = {}
        for m in sim.modalities:
            r = http.post(
                "/streams",
                json={"modality": m, "source_id": sim.source_ids[m], "model": "m2s-synthetic-demo:1"},
            )
            assert r.status_code == 201, r.text
            base[m] = r.json()["id"]
        r = http.post(
            "/calibrations",
            json={
                "participant": "sim-s0",
                "streams": list(followed.values()),
                "labels": {"markers": {"source_id": sim.source_ids["markers"]}},
                "record": True,
            },
        )
        assert r.status_code == 201, r.text
        cid, rid = r.json()["id"], r.json()["recording_id"]
        head_only: dict[str, str] = {}

        def adapt(path: Path) -> None:
            command = [
                str(Path(sys.executable).parent / "m2s-train"), "adapt", str(path), "--base", "m2s-synthetic-demo:1",
                "--participant", "sim-s0", "--into", str(calibrated), "--device", "cpu",
            ]  # fmt: skip
            t0 = time.monotonic()
            step["adapt"] = subprocess.run(command, capture_output=True, text=True, timeout=600)
            step["adapt_s"] = time.monotonic() - t0

        def until() -> bool:
            if step["stage"] == "calibrating":
                cal = http.get(f"/calibrations/{cid}").json()
                if any(e["phase"] == "test" for e in cal["events"]):  # the calibration block is over
                    r = http.post(f"/calibrations/{cid}/fit", json={"activate": True})
                    assert r.status_code == 200, r.text
                    step["fit"] = r.json()
                    for m in sim.modalities:
                        r = http.post(
                            "/streams",
                            json={"modality": m, "source_id": sim.source_ids[m], "model": f"{NAME}:1"},
                        )
                        assert r.status_code == 201, r.text
                        head_only[m] = r.json()["id"]
                    step["recording"] = http.get(f"/recordings/{rid}").json()
                    step["thread"] = threading.Thread(
                        target=adapt, args=(recordings / step["recording"]["file"],)
                    )
                    step["thread"].start()
                    step["stage"] = "adapting"
                return False
            if step["stage"] == "adapting":
                if step["thread"].is_alive():
                    return False
                assert step["adapt"].returncode == 0, step["adapt"].stderr[-3000:]
                step["stage"], step["adapted_at"] = "switching", time.monotonic()
                return False
            if step["stage"] == "switching":
                switched = [
                    s for s in states if s["stream_id"] in followed.values() and s["model"]["version"] == 2
                ]
                if {s["stream_id"] for s in switched} == set(followed.values()):
                    step["stage"], step["switch_lsl"] = (
                        "scoring",
                        max(
                            min(s["lsl_time"] for s in switched if s["stream_id"] == sid)
                            for sid in followed.values()
                        ),
                    )
                    step["until"] = time.monotonic() + 4 * TRIAL_S / SPEED
                else:
                    assert time.monotonic() < step["adapted_at"] + 30, "the service did not pick up version 2"
                return False
            return time.monotonic() > step["until"]

        with sim:
            asyncio.run(collect_states(url, states, until))
        streams_after = {s["id"]: s for s in http.get("/streams").json()["data"]}
    assert sim.error is None

    # The recording: the calibration block, every chosen stream and the markers, closed at the fit.
    rec = step["recording"]
    assert rec["state"] == "closed" and rec["calibration_id"] == cid
    recorded = read_recording(recordings / rec["file"])
    assert {s.type for s in recorded.streams} >= {"EEG", "Gaze"}
    texts = recorded.marker_stream().texts
    assert sum('"phase": "calibration"' in t for t in texts) == 9  # K = 3 trials of each of 3 classes

    # The adapted version: written next to the head-only one, from the recording, provenance included.
    print(step["adapt"].stdout)  # noqa: T201 (adapt's own table)
    bundle = ModelRepository(calibrated).load(f"{NAME}:2")
    assert bundle.manifest.calibration.method == "adapted"
    assert bundle.manifest.calibration.base == "m2s-synthetic-demo:1"
    assert all(streams_after[sid]["model"] == {"name": NAME, "version": 2} for sid in followed.values())
    assert all(streams_after[sid]["model"]["version"] == 1 for sid in head_only.values())

    # Hot reload between two states: no gap longer than a hop at the switch to version 2.
    for m, sid in followed.items():
        mine = [s for s in states if s["stream_id"] == sid]
        versions = [s["model"]["version"] if s["model"]["name"] == NAME else 0 for s in mine]
        k = versions.index(2)
        assert set(versions[k:]) == {2}
        gaps = np.diff([s["lsl_time"] for s in mine[k - 3 : k + 3]])
        assert np.all(gaps < HOP_S + 0.01), f"{m}: a gap at the switch to the adapted version: {gaps}"

    # The same trials after the switch, scored for the three sets.
    after = step["switch_lsl"]
    report = {}
    for name, ids in (("uncalibrated", base), ("head-only", head_only), ("adapted", followed)):
        report[name] = {
            m: score_states(
                states, sim, m, lambda s, sid=sid: s["stream_id"] == sid and s["lsl_time"] >= after
            )
            for m, sid in ids.items()
        }
    print(f"adapt took {step['adapt_s']:.1f} s; live balanced accuracy after the switch: {report}")  # noqa: T201
    for name, scores in report.items():
        for m, (_bacc, n) in scores.items():
            assert n >= 8, f"{name}/{m}: only {n} states scored"
    assert report["adapted"]["eeg"][0] > 0.6, report  # chance: 1/3
