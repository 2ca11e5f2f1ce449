"""Tests for training.pretrain: one forward per step, CLUB fitting, determinism, resume, DDP."""

import os
import socket

import numpy as np
import pytest
import torch

import models.m2s
from models.config import M2SConfig, ModalityConfig
from training.pretrain import (
    CHECKPOINT_NAME,
    DistributedContext,
    PretrainConfig,
    distributed_context,
    load_checkpoint,
    model_from_checkpoint,
    pretrain,
)

MODEL = M2SConfig(
    modalities=(ModalityConfig(name="eeg", dim=20, n_channels=4), ModalityConfig(name="eye", dim=6)),
    seq_len=5,
    d_model=16,
    n_blocks=1,
    d_ff=32,
    n_heads=2,
    head_dim=8,
    d_ei=16,
    cpc_hidden=16,
    club_hidden=16,
)


def _windows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "eeg": rng.normal(size=(n, 5, 20)).astype(np.float32),
        "eye": rng.normal(size=(n, 5, 6)).astype(np.float32),
    }


def _config(**kw):
    base = {"epochs": 4, "batch_size": 16, "lr": 1e-3, "progress": False, "device": "cpu"}
    return PretrainConfig(**{**base, **kw})


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_config_validation():
    """Invalid settings raise with the offending value."""
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        PretrainConfig(epochs=0)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        PretrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        PretrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="device must be"):
        PretrainConfig(device="tpu")
    with pytest.raises(TypeError, match="epochs must be an int"):
        PretrainConfig(epochs=2.5)
    with pytest.raises(ValueError, match="club_steps and seed"):
        PretrainConfig(club_steps=-1)


def test_input_validation():
    """Missing modalities, wrong shapes and a single modality are refused."""
    x = _windows()
    with pytest.raises(ValueError, match="holds modalities"):
        pretrain(MODEL, {"eeg": x["eeg"]}, _config())
    with pytest.raises(ValueError, match=r"must have shape \(N, 5, 6\)"):
        pretrain(MODEL, {"eeg": x["eeg"], "eye": x["eye"][:, :4]}, _config())
    with pytest.raises(ValueError, match="same number of windows"):
        pretrain(MODEL, {"eeg": x["eeg"], "eye": x["eye"][:10]}, _config())
    single = M2SConfig(modalities=(ModalityConfig(name="eye", dim=6),), d_model=16, n_heads=2)
    with pytest.raises(ValueError, match="at least 2"):
        pretrain(single, {"eye": x["eye"]}, _config())
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        pretrain(MODEL, x, _config(), resume=True)


def test_one_forward_per_step_and_club_fitted_k_times(monkeypatch):
    """Each step calls the model forward once and the estimator loss club_steps times."""
    calls = {"forward": 0, "club": 0}
    forward, club = models.m2s.M2S.forward, models.m2s.M2S.club_estimator_loss

    def counted_forward(self, *a, **k):
        calls["forward"] += 1
        return forward(self, *a, **k)

    def counted_club(self, *a, **k):
        calls["club"] += 1
        return club(self, *a, **k)

    monkeypatch.setattr(models.m2s.M2S, "forward", counted_forward)
    monkeypatch.setattr(models.m2s.M2S, "club_estimator_loss", counted_club)
    pretrain(MODEL, _windows(n=40), _config(epochs=2, batch_size=16, club_steps=3))
    steps = 2 * (40 // 16)  # last incomplete batch dropped
    assert calls == {"forward": steps, "club": 3 * steps}


def test_losses_finite_and_history_complete():
    """Every epoch records each loss component, the estimator loss and the learning rate."""
    result = pretrain(MODEL, _windows(), _config(epochs=3))
    assert result.completed and len(result.history) == 3
    for rec in result.history:
        for key in ("total", "club", "recon", "contra", "cpc", "club_estimator", "lr"):
            assert np.isfinite(rec[key]), key
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0
    assert not result.model.training


def test_training_lowers_the_loss():
    """The weighted loss falls over epochs on structured data."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 5, 3))
    x = {
        "eeg": (z @ rng.normal(size=(3, 20))).astype(np.float32),
        "eye": (z @ rng.normal(size=(3, 6))).astype(np.float32),
    }
    result = pretrain(MODEL, x, _config(epochs=25, batch_size=32, lr=3e-3))
    assert result.history[-1]["total"] < result.history[0]["total"] - 0.5


def test_estimators_update_only_when_club_is_on():
    """CLUB estimator weights move with w_club > 0 and stay at their init with w_club = 0."""
    from dataclasses import replace

    torch.manual_seed(0)
    init = models.m2s.M2S(MODEL).state_dict()
    on = pretrain(MODEL, _windows(), _config(epochs=1)).model.state_dict()
    off_cfg = replace(MODEL, w_club=0.0)
    off = pretrain(off_cfg, _windows(), _config(epochs=1)).model.state_dict()
    est = [k for k in init if k.startswith("club_estimators.")]
    assert est
    assert any(not torch.equal(init[k], on[k]) for k in est)
    assert all(torch.equal(init[k], off[k]) for k in est)


def test_seeded_runs_are_identical():
    """Two CPU runs with the same seed end at exactly the same weights; another seed differs."""
    a = pretrain(MODEL, _windows(), _config(epochs=2)).model
    b = pretrain(MODEL, _windows(), _config(epochs=2)).model
    c = pretrain(MODEL, _windows(), _config(epochs=2, seed=1)).model
    _assert_same_weights(a, b)
    assert not torch.equal(a.state_dict()["log_logit_scale"], c.state_dict()["log_logit_scale"]) or any(
        not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items()
    )


def test_resume_ends_at_identical_weights(tmp_path):
    """Stop after epoch 2 of 4 and resume: weights, optimizer state and history equal an uninterrupted run
    EXACTLY (tolerance 0 on CPU)."""
    x = _windows()
    full = pretrain(MODEL, x, _config(), out_dir=tmp_path / "full")
    part = pretrain(MODEL, x, _config(), out_dir=tmp_path / "resumed", stop_after_epoch=2)
    assert not part.completed and len(part.history) == 2
    assert load_checkpoint(part.checkpoint)["epoch"] == 2
    resumed = pretrain(MODEL, x, _config(), out_dir=tmp_path / "resumed", resume=True)
    assert resumed.completed
    _assert_same_weights(full.model, resumed.model)
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in full.history] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in resumed.history
    ]
    ck_full = load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME)
    ck_res = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    for (ka, va), (kb, vb) in zip(
        ck_full["optimizer"]["state"].items(), ck_res["optimizer"]["state"].items(), strict=True
    ):
        assert ka == kb and torch.equal(va["exp_avg"], vb["exp_avg"])
    assert ck_full["step"] == ck_res["step"]


def test_resume_refuses_other_settings(tmp_path):
    """A checkpoint trained with other settings cannot be resumed."""
    pretrain(MODEL, _windows(), _config(), out_dir=tmp_path, stop_after_epoch=1)
    with pytest.raises(ValueError, match="different pretraining settings \\(lr\\)"):
        pretrain(MODEL, _windows(), _config(lr=5e-4), out_dir=tmp_path, resume=True)
    from dataclasses import replace

    with pytest.raises(ValueError, match="different network config"):
        pretrain(replace(MODEL, d_ff=64), _windows(), _config(), out_dir=tmp_path, resume=True)


def test_checkpoint_rebuilds_the_model(tmp_path):
    """model_from_checkpoint reproduces the trained network's embeddings."""
    result = pretrain(MODEL, _windows(), _config(epochs=1), out_dir=tmp_path, extra={"note": "x"})
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt["extra"] == {"note": "x"}
    model = model_from_checkpoint(tmp_path / CHECKPOINT_NAME)
    x = torch.as_tensor(_windows(n=8, seed=1)["eye"])
    torch.testing.assert_close(model.embed("eye", x), result.model.embed("eye", x), rtol=0, atol=0)


def test_load_checkpoint_errors(tmp_path):
    """Missing files and foreign files are refused."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an M2S pretraining checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_distributed_context_reads_torchrun_env(monkeypatch):
    """WORLD_SIZE / RANK / LOCAL_RANK are read as torchrun sets them; defaults mean one process."""
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed_context() == DistributedContext(0, 0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed_context()
    assert ctx.enabled and not ctx.is_main and (ctx.rank, ctx.local_rank, ctx.world_size) == (3, 1, 4)
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="inconsistent distributed environment"):
        distributed_context()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="must be integers"):
        distributed_context()


def _ddp_worker(rank, world, port, out_dir, queue):
    os.environ.update(
        {"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
         "MASTER_PORT": str(port)}
    )  # fmt: skip
    torch.set_num_threads(1)
    result = pretrain(MODEL, _windows(n=48), _config(epochs=2, batch_size=8), out_dir=out_dir)
    # numpy copies travel by value (shared torch storage dies with the worker)
    queue.put((rank, {k: v.numpy().copy() for k, v in result.model.state_dict().items()}, result.checkpoint))


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    """Two gloo processes on CPU stay in sync (same weights, estimators included); only rank 0 writes."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, str(tmp_path), queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict((r, (sd, ck)) for r, sd, ck in (queue.get(timeout=240) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (sd0, ck0), (sd1, ck1) = got[0], got[1]
    assert ck0 == tmp_path / CHECKPOINT_NAME and ck1 is None
    for k in sd0:
        np.testing.assert_allclose(sd0[k], sd1[k], rtol=0, atol=1e-6, err_msg=k)
    assert load_checkpoint(ck0)["epoch"] == 2
