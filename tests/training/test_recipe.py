"""Optimisation budgeted in steps: PretrainConfig/FinetuneConfig min_steps, max_batch_fraction, warm-up."""

import math

import numpy as np
import pytest
import torch

from models.config import M2SConfig, ModalityConfig
from models.m2s import M2S
from training.finetune import SELECTED_ON_LAST, FinetuneConfig, finetune, train_supervised
from training.pretrain import (
    CHECKPOINT_NAME,
    PretrainConfig,
    StepPlan,
    _batches,
    load_checkpoint,
    make_lr_scheduler,
    pretrain,
    warmup_cosine_factor,
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
NEW_DEFAULTS = {"min_steps": 0, "max_batch_fraction": 1.0, "warmup_steps": 0}


def _windows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "eeg": rng.normal(size=(n, 5, 20)).astype(np.float32),
        "eye": rng.normal(size=(n, 5, 6)).astype(np.float32),
    }


def _config(**kw):
    base = {"epochs": 4, "batch_size": 16, "lr": 1e-3, "progress": False, "device": "cpu"}
    return PretrainConfig(**{**base, **kw})


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _no_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


# ---------------------------------------------------------------------------------------------- plan


def test_plan_arithmetic():
    """Effective batch, steps per epoch, epochs and total steps follow the documented formulas."""
    cfg = PretrainConfig(batch_size=256, max_batch_fraction=0.25)
    assert cfg.plan(100) == StepPlan(batch_size=25, steps_per_epoch=4, epochs=200, total_steps=800)
    plan = PretrainConfig(batch_size=256, max_batch_fraction=0.25, epochs=10, min_steps=1000).plan(100)
    assert plan == (25, 4, 250, 1000)
    assert (plan.batch_size, plan.steps_per_epoch, plan.epochs, plan.total_steps) == (25, 4, 250, 1000)
    # min_steps below epochs * steps changes nothing; a remainder rounds the epochs up
    assert (
        PretrainConfig(batch_size=256, max_batch_fraction=0.25, epochs=10, min_steps=7).plan(100).epochs == 10
    )
    assert PretrainConfig(batch_size=25, epochs=1, min_steps=10).plan(100) == (25, 4, 3, 12)
    # the reference recipe on small data: one step per epoch
    assert PretrainConfig(batch_size=256).plan(112) == (112, 1, 200, 200)
    assert PretrainConfig(batch_size=256).plan(1000) == (256, 3, 200, 600)  # last 232 dropped
    # the batch never falls below 2, and the floor is the written one despite float rounding
    assert PretrainConfig(batch_size=256, max_batch_fraction=0.01).plan(100) == (2, 50, 200, 10000)
    assert PretrainConfig(batch_size=256, max_batch_fraction=0.29).plan(100).batch_size == 29
    # classifier training keeps a last batch of >= 2 windows, skips one of a single window
    ft = FinetuneConfig(batch_size=256, max_batch_fraction=0.25, epochs=10, min_steps=1000)
    assert ft.plan(100) == (25, 4, 250, 1000)
    assert FinetuneConfig(batch_size=32).plan(100) == (32, 4, 100, 400)
    assert FinetuneConfig(batch_size=32).plan(97) == (32, 3, 100, 300)
    assert FinetuneConfig(batch_size=32).plan(1) == (2, 0, 100, 0)


@pytest.mark.parametrize("n", [2, 3, 15, 16, 17, 31, 32, 33, 100, 112, 400, 1000])
@pytest.mark.parametrize("batch_size", [2, 16, 256])
def test_default_plan_is_the_old_arithmetic(n, batch_size):
    """With the new fields at their defaults the plan is what the loop did before they existed."""
    plan = PretrainConfig(batch_size=batch_size, epochs=7).plan(n)
    assert plan == (
        min(batch_size, n),
        len(_batches(torch.arange(n), batch_size)),
        7,
        7 * plan.steps_per_epoch,
    )
    ft = FinetuneConfig(batch_size=batch_size, epochs=7).plan(n)
    old_steps = sum(1 for i in range(0, n, batch_size) if min(batch_size, n - i) >= 2)
    assert ft == (min(batch_size, n), old_steps, 7, 7 * old_steps)


def test_validation_of_the_new_fields():
    """Bad values are refused with messages that say what to pass."""
    for cls in (PretrainConfig, FinetuneConfig):
        with pytest.raises(ValueError, match="min_steps .*must be >= 0"):
            cls(min_steps=-1)
        with pytest.raises(TypeError, match="min_steps must be an int"):
            cls(min_steps=2.5)
        for bad in (0, 0.0, -0.5, 1.5, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=r"max_batch_fraction must be in \(0, 1\]"):
                cls(max_batch_fraction=bad)
        with pytest.raises(TypeError, match="max_batch_fraction must be a number"):
            cls(max_batch_fraction="0.5")
        assert cls(max_batch_fraction=1).max_batch_fraction == 1
    with pytest.raises(ValueError, match="min_steps and warmup_steps must be >= 0"):
        PretrainConfig(warmup_steps=-1)
    with pytest.raises(TypeError, match="warmup_steps must be an int"):
        PretrainConfig(warmup_steps=1.0)
    with pytest.raises(ValueError, match=r"warmup_steps=200 must be smaller than the run's 200 steps"):
        PretrainConfig(batch_size=256, warmup_steps=200).plan(112)
    with pytest.raises(ValueError, match="cannot be reached"):
        FinetuneConfig(min_steps=5).plan(1)
    assert {k: PretrainConfig().to_dict()[k] for k in NEW_DEFAULTS} == NEW_DEFAULTS
    assert {k: FinetuneConfig().to_dict()[k] for k in ("min_steps", "max_batch_fraction")} == {
        "min_steps": 0,
        "max_batch_fraction": 1.0,
    }


# ---------------------------------------------------------------------------------------------- schedule


def test_warmup_then_cosine_per_step():
    """The lr of each step rises linearly from ~0, equals lr exactly after warmup_steps steps, then
    falls on a cosine to exactly 0 at the last step."""
    lr, warmup = 1e-3, 5
    cfg = PretrainConfig(batch_size=4, epochs=1, min_steps=20, warmup_steps=warmup, lr=lr)
    plan = cfg.plan(4)
    assert plan == (4, 1, 20, 20)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_lr_scheduler(opt, cfg, plan)
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    used = []  # lr each optimiser step runs with
    for _ in range(plan.total_steps):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used[0] == pytest.approx(lr / (warmup + 1)) and used[0] < 0.2 * lr
    assert all(a < b for a, b in zip(used[:warmup], used[1 : warmup + 1], strict=True))
    assert used[warmup] == lr  # after warmup_steps steps: exactly lr
    assert all(a > b for a, b in zip(used[warmup:], used[warmup + 1 :], strict=False))
    assert sched.get_last_lr()[0] == 0.0
    assert warmup_cosine_factor(warmup + (20 - warmup) // 2, warmup, 20) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * ((20 - warmup) // 2) / (20 - warmup)))
    )


def test_warmup_in_a_run_history():
    """One step per epoch, so the history's per-epoch lr is the per-step lr: min_steps sets the run's
    length, warm-up rises to lr exactly, then cosine to 0; step counts are recorded."""
    cfg = _config(epochs=1, batch_size=16, min_steps=10, warmup_steps=4)
    result = pretrain(MODEL, _windows(n=16), cfg)
    assert result.plan == (16, 1, 10, 10)
    assert [h["epoch"] for h in result.history] == list(range(1, 11))
    assert [h["step"] for h in result.history] == list(range(1, 11))
    lrs = [h["lr"] for h in result.history]  # lr after each step
    assert lrs[:4] == sorted(lrs[:4]) and lrs[0] < lrs[3]
    assert lrs[3] == cfg.lr  # after warmup_steps = 4 steps
    assert all(a > b for a, b in zip(lrs[3:], lrs[4:], strict=False))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-15)


def test_defaults_are_bit_identical():
    """Implicit and explicit defaults give the same run; its schedule is CosineAnnealingLR over the
    old total steps, with the very lr values a bare CosineAnnealingLR produces."""
    x = _windows(n=40)
    a = pretrain(MODEL, x, _config(epochs=3))
    b = pretrain(MODEL, x, _config(epochs=3, **NEW_DEFAULTS))
    assert _same_weights(a.model, b.model)
    assert _no_seconds(a.history) == _no_seconds(b.history)
    steps_per_epoch = len(_batches(torch.arange(40), 16))  # the pre-plan formula
    assert a.plan == (16, steps_per_epoch, 3, 3 * steps_per_epoch)
    assert [h["step"] for h in a.history] == [steps_per_epoch * e for e in (1, 2, 3)]

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = make_lr_scheduler(opt, _config(epochs=3), a.plan)
    assert type(sched) is torch.optim.lr_scheduler.CosineAnnealingLR and sched.T_max == 3 * steps_per_epoch
    ref_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=3 * steps_per_epoch)
    expected = []
    for _ in range(3):
        for _ in range(steps_per_epoch):
            ref_opt.step()
            ref.step()
        expected.append(ref.get_last_lr()[0])
    assert [h["lr"] for h in a.history] == expected  # bit-identical, not approximate
    # the warm-up formula without warm-up is the same curve (up to rounding of the recursive form)
    for k in range(3 * steps_per_epoch + 1):
        assert 1e-3 * warmup_cosine_factor(k, 0, 3 * steps_per_epoch) == pytest.approx(
            1e-3 * 0.5 * (1 + math.cos(math.pi * k / (3 * steps_per_epoch))), abs=1e-15
        )


# ---------------------------------------------------------------------------------------------- resume


def test_resume_with_step_budget_ends_at_identical_weights(tmp_path):
    """min_steps + warm-up (ending mid-epoch) + max_batch_fraction: stop after epoch 2 and resume, and
    weights, history and step counter equal an uninterrupted run exactly."""
    x = _windows(n=40)
    cfg = _config(epochs=2, batch_size=256, max_batch_fraction=0.25, min_steps=16, warmup_steps=6)
    assert cfg.plan(40) == (10, 4, 4, 16)
    full = pretrain(MODEL, x, cfg, out_dir=tmp_path / "full")
    part = pretrain(MODEL, x, cfg, out_dir=tmp_path / "resumed", stop_after_epoch=2)
    assert not part.completed and len(part.history) == 2
    resumed = pretrain(MODEL, x, cfg, out_dir=tmp_path / "resumed", resume=True)
    assert resumed.completed and len(full.history) == 4
    assert _same_weights(full.model, resumed.model)
    assert _no_seconds(full.history) == _no_seconds(resumed.history)
    ck_full = load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME)
    ck_res = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    assert ck_full["step"] == ck_res["step"] == 16
    assert ck_full["plan"] == {"batch_size": 10, "steps_per_epoch": 4, "epochs": 4, "total_steps": 16}
    assert ck_full["scheduler"] == ck_res["scheduler"]
    with pytest.raises(ValueError, match=r"different pretraining settings \(warmup_steps\)"):
        pretrain(
            MODEL,
            x,
            _config(**{**cfg.to_dict(), "warmup_steps": 5}),
            out_dir=tmp_path / "resumed",
            resume=True,
        )


def test_checkpoint_without_the_new_settings_still_resumes(tmp_path):
    """A checkpoint written before the new fields existed resumes with them at their defaults."""
    x = _windows(n=40)
    pretrain(MODEL, x, _config(), out_dir=tmp_path, stop_after_epoch=1)
    path = tmp_path / CHECKPOINT_NAME
    ckpt = load_checkpoint(path)
    for k in NEW_DEFAULTS:
        del ckpt["pretrain_config"][k]
    torch.save(ckpt, path)
    assert pretrain(MODEL, x, _config(), out_dir=tmp_path, resume=True).completed
    with pytest.raises(ValueError, match=r"different pretraining settings \(min_steps\)"):
        pretrain(MODEL, x, _config(min_steps=100), out_dir=tmp_path, resume=True)


# ---------------------------------------------------------------------------------------------- finetune


def _labelled(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(size=(n, 5, 20)) + 1.5 * y[:, None, None]).astype(np.float32), y


def _ft(**kw):
    return FinetuneConfig(**{"epochs": 2, "batch_size": 32, "device": "cpu", "progress": False, **kw})


def test_finetune_min_steps_without_validation_runs_every_planned_epoch():
    """40 windows, batch 32: 2 steps/epoch; min_steps=15 needs 8 epochs, all run, the last is kept."""
    torch.manual_seed(0)
    x, y = _labelled()
    cfg = _ft(min_steps=15)
    assert cfg.plan(40) == (32, 2, 8, 16)
    r = finetune(M2S(MODEL), "eeg", (x, y), None, 3, cfg)
    assert len(r.history) == 8 and r.best_epoch == 8 and r.selected_on == SELECTED_ON_LAST
    assert [h["step"] for h in r.history] == [2 * e for e in range(1, 9)]
    assert r.history[-1]["step"] >= 15


def test_finetune_batch_fraction_and_early_stopping_with_validation():
    """max_batch_fraction makes more steps per epoch; with validation windows early stopping can end
    a min_steps run sooner, never later than the plan."""
    torch.manual_seed(0)
    x, y = _labelled()
    xv, yv = _labelled(n=15, seed=1)
    cfg = _ft(max_batch_fraction=0.25, min_steps=40, patience=0)
    assert cfg.plan(40) == (10, 4, 10, 40)
    r = finetune(M2S(MODEL), "eeg", (x, y), (xv, yv), 3, cfg)
    assert len(r.history) == 10 and r.history[-1]["step"] == 40
    stopped = finetune(M2S(MODEL), "eeg", (x, y), (xv, yv), 3, _ft(min_steps=400, patience=1))
    assert len(stopped.history) < 200 and stopped.history[-1]["step"] == 2 * len(stopped.history)


def test_supervised_min_steps():
    """The supervised baseline honours min_steps too and records cumulative steps."""
    x = _windows(n=20)["eye"]
    y = np.arange(20) % 3
    r = train_supervised(MODEL, "eye", (x, y), None, 3, _ft(epochs=1, batch_size=8, min_steps=7))
    assert [h["step"] for h in r.history] == [3, 6, 9]  # 8 + 8 + 4 windows per epoch
