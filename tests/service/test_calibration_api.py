"""``/calibrations``: the contract of CALIBRATION.md §3 on the real app under uvicorn, bad input first, then end to end.

Bad input runs against streams whose outlet never appears (a calibration can be created on any attached
stream; nothing here needs data). The end-to-end tests play the LSL simulator (an unseen subject, the demo
population bundle), calibrate through REST with marker labels or REST labels, activate, and score the
following trials from a real websockets client against the simulator's ground truth.
"""

import asyncio
import os
import time

import httpx
import pytest

from clients.simulator import Simulator
from models.repository import ModelRepository
from service.app import create_app
from service.config import AttachRequest
from synthetic import SyntheticConfig
from tests.service.conftest import collect_states, make_settings, run_server, score_states

CLASSES = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def app_and_url(tmp_path_factory):
    repo = tmp_path_factory.mktemp("calibrated")
    attach = [AttachRequest(modality=m, source_id=f"never-{os.getpid()}-{m}") for m in ("eeg", "eye", "ecg")]
    app = create_app(make_settings(attach=attach, calibrated_repository=repo))
    with run_server(app) as url:
        yield app, url, repo


@pytest.fixture(scope="module")
def http(app_and_url):
    with httpx.Client(base_url=app_and_url[1], timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def stream_ids(http):
    return {s["modality"]: s["id"] for s in http.get("/streams").json()["data"]}


def _create(http, streams, labels=None, **extra):
    body = {"participant": "p-1", "streams": streams, "labels": labels or {"rest": True}, **extra}
    return http.post("/calibrations", json=body)


def test_routes_are_in_the_openapi_schema(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert set(paths["/calibrations"]) == {"get", "post"}
    assert set(paths["/calibrations/{calibration_id}"]) == {"get", "delete"}
    assert "post" in paths["/calibrations/{calibration_id}/label"]
    assert "post" in paths["/calibrations/{calibration_id}/fit"]
    assert "patch" in paths["/streams/{stream_id}"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"participant": "bad id!", "streams": ["x"], "labels": {"rest": True}},
            "Invalid request: participant: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'.",
        ),
        (
            {"participant": "p", "streams": ["x"], "labels": {}},
            'Invalid request: labels: give exactly one label source: {"markers": {"type": "Markers"}} or {"rest": true}.',
        ),
        (
            {"participant": "p", "streams": [], "labels": {"rest": True}},
            "Invalid request: streams: List should have at least 1 item after validation, not 0.",
        ),
        (
            {"participant": "p", "streams": ["x"], "labels": {"markers": {}}},
            "Invalid request: labels.markers: a stream selector needs at least one of type, name, "
            "source_id to pick the LSL stream, e.g. type='EEG' or source_id='my-amp-1234'.",
        ),
    ],
)
def test_malformed_requests_get_422_with_the_field(http, body, detail):
    r = http.post("/calibrations", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == detail


def test_unknown_stream_and_model(http, stream_ids):
    r = _create(http, ["eeg-nope"])
    assert r.status_code == 404
    assert r.json()["detail"].startswith("No attached stream 'eeg-nope'; attached streams: ")
    r = _create(http, [stream_ids["eeg"], "eeg-nope"], model="m2s-synthetic-demo")
    assert r.status_code == 404 and r.json()["detail"].startswith("No attached stream 'eeg-nope'")
    r = _create(http, [stream_ids["eeg"]], model="nope:3")
    assert r.status_code == 404
    assert r.json()["detail"] == "Model 'nope' not found; models in the repository: 'm2s-synthetic-demo'."
    r = _create(http, [stream_ids["eeg"], stream_ids["eeg"]])
    assert r.json()["detail"] == "Streams lists a stream twice; give each stream id once."
    r = _create(http, [stream_ids["eeg"]], participant="p" * 60)
    assert r.status_code == 422 and "would have 79 characters (at most 64)" in r.json()["detail"]


def test_rest_labels_fit_checks_and_cancel(app_and_url, http, stream_ids):
    """Bad labels, a fit with too few trials, a stream already in a calibration, a second fit while one
    runs: 4xx with the reason, the calibration keeps collecting and nothing is written. Cancel writes nothing."""
    _, _, repo = app_and_url
    r = _create(http, [stream_ids["eeg"], stream_ids["eye"]])
    assert r.status_code == 201, r.text
    cal = r.json()
    cid = cal["id"]
    assert cal["state"] == "collecting" and cal["labels"] == "rest"
    assert cal["model"] == {"name": "m2s-synthetic-demo", "version": 1}
    assert cal["counts"] == {m: dict.fromkeys(CLASSES, 0) for m in ("eeg", "eye")}
    r = http.post(f"/calibrations/{cid}/label", json={"label": "happy"})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "Label 'happy' is not a class of m2s-synthetic-demo:1; use one of: negative, neutral, positive."
    )
    r = http.post(f"/calibrations/{cid}/label", json={"label": None})
    assert r.status_code == 422
    r = http.post(f"/calibrations/{cid}/label", json={"label": "neutral"})
    assert r.status_code == 200 and r.json()["open_label"] == "neutral"
    # The same stream cannot join another calibration while this one collects.
    r = _create(http, [stream_ids["eye"]], participant="p-2")
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"Stream {stream_ids['eye']} is already in calibration {cid} (participant p-1, collecting); cancel it "
        f"(DELETE /calibrations/{cid}) or fit it first."
    )
    r = http.post(f"/calibrations/{cid}/fit", json={})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "No labelled window yet; label at least 2 trials of each class (negative, neutral, positive) first. "
        "(The open trial counts once it ends: label null.)"
    )
    r = http.post(f"/calibrations/{cid}/fit", json={"train_modality": "ecg"})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "The train modality 'ecg' is not a modality of this calibration; its modalities: eeg, eye."
    )
    app = app_and_url[0]
    calibration = app.state.calibrations.get(cid)
    calibration.state = "fitting"  # as while a fit runs
    r = http.post(f"/calibrations/{cid}/fit", json={})
    assert r.status_code == 409
    assert r.json()["detail"] == f"Calibration {cid} cannot be fitted: a fit is already running."
    assert http.delete(f"/calibrations/{cid}").status_code == 409
    calibration.state = "collecting"
    assert http.get(f"/calibrations/{cid}").json()["state"] == "collecting"
    r = http.delete(f"/calibrations/{cid}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = http.post(f"/calibrations/{cid}/label", json={"label": "neutral"})
    assert r.status_code == 409
    assert r.json()["detail"] == f"Calibration {cid} is cancelled; labels are taken only while collecting."
    assert http.post(f"/calibrations/{cid}/fit", json={}).status_code == 409
    assert [c["state"] for c in http.get("/calibrations").json()["data"] if c["id"] == cid] == ["cancelled"]
    assert http.delete(f"/calibrations/{cid}").status_code == 200  # a finished one is forgotten
    r = http.get(f"/calibrations/{cid}")
    assert r.status_code == 404 and r.json()["detail"].startswith(f"No calibration '{cid}'; calibrations: ")
    assert ModelRepository(repo).names() == []
    assert [p.name for p in repo.iterdir() if not p.name.startswith(".")] == []


def test_marker_calibrations_refuse_rest_labels(http, stream_ids):
    r = _create(http, [stream_ids["ecg"]], labels={"markers": {"source_id": f"never-markers-{os.getpid()}"}})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["markers_connected"] is False
    r = http.post(f"/calibrations/{cid}/label", json={"label": "neutral"})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"Calibration {cid} takes its labels from a marker stream; REST labels need a calibration created with "
        '"labels": {"rest": true}.'
    )
    assert http.delete(f"/calibrations/{cid}").json()["state"] == "cancelled"


def test_calibrations_on_one_marker_stream_share_one_inlet(app_and_url, http, stream_ids):
    """Two calibrations listening to the same marker stream share one inlet (both see every marker from the
    same moment); it stops with the last of them."""
    manager = app_and_url[0].state.calibrations
    markers = {"markers": {"type": f"Never-{os.getpid()}"}}
    ids = []
    for m in ("eeg", "eye"):
        r = _create(http, [stream_ids[m]], labels=markers, participant=f"p-{m}")
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert len(manager._marker_inlets) == 1
    ((inlet, subscribers),) = manager._marker_inlets.values()
    assert sorted(subscribers) == sorted(ids)
    assert manager.get(ids[0]).marker_inlet is manager.get(ids[1]).marker_inlet is inlet
    http.delete(f"/calibrations/{ids[0]}")
    assert list(manager._marker_inlets.values())[0][1].keys() == {ids[1]}
    http.delete(f"/calibrations/{ids[1]}")
    assert manager._marker_inlets == {}
    assert not inlet._thread.is_alive()


def test_a_stream_in_a_calibration_cannot_swap_to_other_features(tmp_path, serve):
    """While a calibration collects a stream's features, PATCH to a model computing other features is a 409
    (the collected windows would not fit it); the same features are fine."""
    import shutil

    from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
    from signals.normalisation import Normalisation
    from signals.spec import DESpec
    from tests.bundles import write_linear_bundle

    root = tmp_path / "models"
    demo = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)
    shutil.copytree(demo.path, root / DEMO_BUNDLE / "1")
    eeg = demo.manifest.graph("eeg").feature_spec
    spec = DESpec(modality="eeg", sfreq=eeg.sfreq, channels=eeg.channels[:3], window_s=1.0, hop_s=1.0)
    write_linear_bundle(root, "other-spec", {"eeg": (spec, 2, 1.0, Normalisation.identity(spec.n_features))},
                        class_names=tuple(demo.manifest.class_names))  # fmt: skip
    settings = make_settings(model_repository=root, calibrated_repository=tmp_path / "cal",
                             attach=[AttachRequest(modality="eeg", source_id=f"never-{os.getpid()}")])  # fmt: skip
    url = serve(create_app(settings))
    with httpx.Client(base_url=url, timeout=30) as http:
        sid = http.get("/streams").json()["data"][0]["id"]
        cid = _create(http, [sid]).json()["id"]
        r = http.patch(f"/streams/{sid}", json={"model": "other-spec"})
        assert r.status_code == 409
        assert r.json()["detail"] == (
            f"Stream {sid} is in calibration {cid}, which collects its 'eeg' features as m2s-synthetic-demo:1 "
            "computes them; other-spec:1 computes others. Fit or cancel the calibration first."
        )
        assert http.patch(f"/streams/{sid}", json={"model": DEMO_BUNDLE}).status_code == 200
        http.delete(f"/calibrations/{cid}")
        assert http.patch(f"/streams/{sid}", json={"model": "other-spec"}).status_code == 200


def test_an_unwritable_repository_is_refused_before_collecting(tmp_path, serve):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    app = create_app(
        make_settings(
            attach=[AttachRequest(modality="eeg", source_id="never")], calibrated_repository=blocker / "x"
        )
    )
    url = serve(app)
    with httpx.Client(base_url=url, timeout=30) as http:
        sid = http.get("/streams").json()["data"][0]["id"]
        r = _create(http, [sid])
    assert r.status_code == 409
    assert r.json()["detail"].startswith(
        f"Calibrated models cannot be saved: M2S_CALIBRATED_REPOSITORY '{blocker / 'x'}' is not a writable folder ("
    )


def test_calibration_routes_need_the_token(tmp_path, serve):
    app = create_app(make_settings(api_token="s3cret", calibrated_repository=tmp_path))
    url = serve(app)
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/calibrations").status_code == 401
        assert http.post("/calibrations", json={}).status_code == 401
        r = http.get("/calibrations", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json() == {"data": [], "count": 0}


# -- end to end -----------------------------------------------------------------------------------

SPEED = 4.0
TRIAL_S = 30.0
CONTEXT_S = 18.0  # the longest window (eye: 18 s of signal): states straddling a trial change are skipped


@pytest.mark.slow
def test_rest_labels_end_to_end_with_a_cross_modal_head(tmp_path):
    """The experimenter labels through REST at each trial onset (real time: REST labels carry the service's
    LSL clock); the head is fitted on EEG only and also serves the ECG stream through its embedding graph."""
    trial_s = 16.0  # EEG windows span 10 s, ECG 12 s: a few whole windows per trial
    sim = Simulator(
        SyntheticConfig(trial_duration_s=trial_s),
        subject=1,
        modalities=("eeg", "ecg"),
        calibration_trials=2,
        speed=1.0,
        source_id_prefix=f"calrest{os.getpid()}",
    )
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in sim.modalities]
    states: list[dict] = []
    settings = make_settings(attach=attach, calibrated_repository=tmp_path, stale_after_s=30.0)
    with run_server(create_app(settings)) as url:
        http = httpx.Client(base_url=url, timeout=60)
        streams = {s["modality"]: s["id"] for s in http.get("/streams").json()["data"]}
        r = http.post(
            "/calibrations",
            json={"participant": "rest-1", "streams": list(streams.values()), "labels": {"rest": True}},
        )
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        with sim:
            labelled, step = 0, {"fit_at": None, "result": None}

            def until():
                nonlocal labelled
                onsets = sim.labels_timeline
                if step["fit_at"] is None and len(onsets) > labelled:  # a new trial started: label it now
                    onset = onsets[labelled]
                    label = onset.label if onset.phase == "calibration" else None
                    r = http.post(f"/calibrations/{cid}/label", json={"label": label})
                    assert r.status_code == 200, r.text
                    labelled += 1
                    if label is None:  # the first test trial: the calibration phase is over
                        r = http.post(
                            f"/calibrations/{cid}/fit", json={"train_modality": "eeg", "activate": True}
                        )
                        assert r.status_code == 200, r.text
                        step["fit_at"], step["result"] = time.monotonic(), r.json()
                return step["fit_at"] is not None and time.monotonic() > step["fit_at"] + 2 * trial_s

            asyncio.run(collect_states(url, states, until))
        cal = http.get(f"/calibrations/{cid}").json()
    result = step["result"]
    assert sim.error is None
    assert cal["trials"] == {c: 2 for c in CLASSES}
    assert result["model"] == {"name": "m2s-synthetic-demo-rest-1", "version": 1}
    assert sorted(result["activated"]) == sorted(streams.values())
    per = result["validation"]["per_modality"]
    assert per["ecg"]["head"] == "eeg" and per["eeg"]["head"] == "eeg"
    assert per["ecg"]["own_head_balanced_accuracy"] is not None
    manifest = ModelRepository(tmp_path).load("m2s-synthetic-demo-rest-1").manifest
    assert manifest.calibration.heads == {"ecg": "eeg", "eeg": "eeg"}
    assert manifest.calibration.train_modality == "eeg"
    scores = {
        m: score_states(states, sim, m, lambda s: s["model"]["name"] == "m2s-synthetic-demo-rest-1")
        for m in streams
    }
    print(f"REST-labelled, EEG head: live {scores}; validation {per}")  # noqa: T201
    assert all(n >= 5 for _, n in scores.values()), scores
