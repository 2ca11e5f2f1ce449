"""Self-supervised M2S pretraining: one forward per step, CLUB estimators fitted on its detached features.

Each step runs the model ONCE on a batch of paired windows of every modality, back-propagates the
weighted loss into the encoders (Adam, optional linear warm-up then a cosine schedule, gradient
clipping, AMP on CUDA), then fits
the CLUB estimators ``club_steps`` times on the detached ``(z_ER, z_EI)`` of that same forward
(own Adam). The reference code runs three extra full forwards for this; the estimator only needs
detached features (M2S-SPEC §4).

Runs on CPU or CUDA and under ``torchrun`` (DDP: ``WORLD_SIZE``/``LOCAL_RANK`` from the environment,
:class:`~torch.utils.data.DistributedSampler` for the batch order, NCCL on CUDA and gloo on CPU; only
rank 0 writes checkpoints and draws progress bars). On CPU a run is deterministic for a given seed,
and a run stopped after any epoch and resumed from its checkpoint ends at exactly the same weights as
an uninterrupted one: checkpoints hold the model, both optimizers, the scheduler, the AMP scaler,
the epoch/step counters and every RNG state (python, numpy, torch, CUDA and the shuffling generator).

The length of a run is budgeted in optimiser steps as well as in passes: a small dataset with a large
batch makes one step per epoch (112 windows, batch 256: 200 epochs are 200 steps), far too few to
train. ``PretrainConfig.min_steps`` and ``max_batch_fraction`` fix that without touching the
defaults; :meth:`PretrainConfig.plan` shows the batch, steps per epoch, epochs and total steps a run
will use before it starts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from models.config import M2SConfig
from signals._checks import check_range, check_type, ensure_int

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "m2s-pretrain-checkpoint"
CHECKPOINT_NAME = "pretrain.pt"

# Settings added after checkpoints were first written: a checkpoint without them was trained with
# their defaults (which reproduce the earlier behaviour), so it still resumes.
_ADDED_SETTINGS = {"min_steps": 0, "max_batch_fraction": 1.0, "warmup_steps": 0}


class StepPlan(NamedTuple):
    """How many optimiser steps a run makes, from its config and its number of windows.

    A tuple ``(batch_size, steps_per_epoch, epochs, total_steps)`` with named fields; see
    :meth:`PretrainConfig.plan` and :meth:`training.finetune.FinetuneConfig.plan`.

    Attributes
    ----------
    batch_size : int
        Effective windows per step (per process under DDP).
    steps_per_epoch : int
        Optimiser steps in one pass over the windows.
    epochs : int
        Passes actually run: ``max(config.epochs, ceil(config.min_steps / steps_per_epoch))``
        (for classifier training, the maximum: early stopping may end it sooner).
    total_steps : int
        ``epochs * steps_per_epoch``; the learning-rate schedule of pretraining spans it.
    """

    batch_size: int
    steps_per_epoch: int
    epochs: int
    total_steps: int


def effective_batch_size(batch_size: int, max_batch_fraction: float, n_windows: int) -> int:
    """``min(batch_size, max(2, floor(max_batch_fraction * n_windows)))``.

    Caps the batch at a fraction of the data so that a small dataset still gets several steps per
    epoch, and never below 2 (contrastive losses and BatchNorm need two samples). With
    ``max_batch_fraction=1`` it is ``batch_size`` or, on fewer windows, all of them.
    """
    # round() first so that e.g. 0.29 * 100 = 28.999999999999996 floors to 29, as written
    cap = max(2, math.floor(round(max_batch_fraction * n_windows, 9)))
    return min(batch_size, cap)


def step_plan(
    n_windows: int,
    batch_size: int,
    max_batch_fraction: float,
    epochs: int,
    min_steps: int,
    *,
    drop_last: bool,
) -> StepPlan:
    """The :class:`StepPlan` of ``n_windows`` windows (shared by pretraining and classifier training).

    Parameters
    ----------
    n_windows : int
        Training windows (per process under DDP).
    batch_size, max_batch_fraction, epochs, min_steps
        As in :class:`PretrainConfig`.
    drop_last : bool
        True (pretraining): when there are more windows than the batch, the last incomplete batch is
        dropped. False (classifier training): only a last batch of a single window is skipped.

    Returns
    -------
    StepPlan
    """
    n = ensure_int(n_windows, "n_windows")
    if n < 1:
        raise ValueError(f"n_windows must be >= 1, got {n}.")
    batch = effective_batch_size(batch_size, max_batch_fraction, n)
    if drop_last:
        steps = max(1, n // batch)
    else:
        steps = n // batch + (1 if n % batch >= 2 else 0)
    if steps == 0:
        if min_steps > 0:
            raise ValueError(
                f"{n} window(s) make no step of at least 2 windows, so min_steps={min_steps} cannot be "
                "reached; pass more training windows or set min_steps=0."
            )
        return StepPlan(batch, 0, epochs, 0)
    n_epochs = max(epochs, -(-min_steps // steps))
    return StepPlan(batch, steps, n_epochs, n_epochs * steps)


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings of pretraining (the network itself is an :class:`M2SConfig`).

    Attributes
    ----------
    epochs : int
        Passes over the training windows (reference: 200); at least this many are run, more when
        ``min_steps`` asks for them.
    batch_size : int
        Windows per step and per process (reference: 512 SEED, 256 SEED-IV), capped by
        ``max_batch_fraction``. When the data has more windows than the batch the last incomplete
        batch is dropped (the contrastive and CPC losses are batch-wise classifications; a tiny last
        batch makes them trivially easy).
    lr, weight_decay : float
        Adam for the encoders (reference: 1e-4, 1e-4): linear warm-up over ``warmup_steps`` steps,
        then cosine-annealed per step to 0 at the last step.
    min_steps : int
        Make at least this many optimiser steps whatever the data size: the run lasts
        ``max(epochs, ceil(min_steps / steps_per_epoch))`` epochs (see :meth:`plan`). Epochs count
        passes, not updates: with a few hundred windows and the reference batch of 256, an epoch is
        ONE step and 200 epochs are 200 updates, which starves the model. 0 (default): ``epochs``
        alone sets the length, as in the reference.
    max_batch_fraction : float
        In (0, 1]. The effective batch is ``min(batch_size, max(2, floor(max_batch_fraction * N)))``
        for N windows (per process under DDP: its share of them), so a small dataset still gets
        several steps per epoch and contrastive batches keep at least 2 windows. 1 (default): the
        batch is ``batch_size`` or, on fewer windows, all of them, as in the reference.
    warmup_steps : int
        Raise the encoders' learning rate linearly from ``lr / (warmup_steps + 1)`` to ``lr`` over
        the first ``warmup_steps`` steps, then anneal it on a cosine to 0 over the remaining steps.
        Must be smaller than the run's total steps. 0 (default): cosine from the first step
        (``CosineAnnealingLR``, exactly as before this option existed).
    estimator_lr : float
        Adam learning rate of the CLUB estimators (constant).
    grad_clip : float
        Maximum global L2 norm of the encoder gradients; 0 disables clipping.
    club_steps : int
        Estimator updates per step on the detached features (reference: 3). Skipped when the
        model's ``w_club`` is 0 (CLIP, w/o CLUB), where the estimator plays no part.
    seed : int
        Seeds python, numpy and torch before the model is built, and the batch order.
    device : str
        'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'. Under torchrun the
        process's ``cuda:LOCAL_RANK`` is used on CUDA machines.
    amp : bool
        Mixed precision on CUDA (bfloat16 where supported, else float16 with a gradient scaler);
        ignored on CPU.
    progress : bool | None
        tqdm bars with each loss component; None = only when stderr is a terminal.
    checkpoint_every : int
        Write the checkpoint every this many epochs (and always after the last one).

    Notes
    -----
    The defaults of ``min_steps``, ``max_batch_fraction`` and ``warmup_steps`` reproduce runs made
    before they existed bit for bit; a budget in steps for small data is, for instance,
    ``PretrainConfig(batch_size=256, max_batch_fraction=0.25, min_steps=2000, warmup_steps=100)``.
    """

    epochs: int = 200
    batch_size: int = 512
    lr: float = 1e-4
    weight_decay: float = 1e-4
    estimator_lr: float = 1e-4
    grad_clip: float = 1.0
    club_steps: int = 3
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    progress: bool | None = None
    checkpoint_every: int = 1
    min_steps: int = 0
    max_batch_fraction: float = 1.0
    warmup_steps: int = 0

    def __post_init__(self):
        for name in (
            "epochs",
            "batch_size",
            "club_steps",
            "seed",
            "checkpoint_every",
            "min_steps",
            "warmup_steps",
        ):
            ensure_int(getattr(self, name), name)
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}.")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (the contrastive loss contrasts samples of a batch), got {self.batch_size}."
            )
        if self.club_steps < 0 or self.seed < 0 or self.checkpoint_every < 1:
            raise ValueError(
                "club_steps and seed must be >= 0 and checkpoint_every >= 1, got "
                f"club_steps={self.club_steps}, seed={self.seed}, checkpoint_every={self.checkpoint_every}."
            )
        check_range(self.lr, "lr", low=0, low_inclusive=False)
        check_range(self.estimator_lr, "estimator_lr", low=0, low_inclusive=False)
        check_range(self.weight_decay, "weight_decay", low=0)
        check_range(self.grad_clip, "grad_clip", low=0)
        if self.min_steps < 0 or self.warmup_steps < 0:
            raise ValueError(
                "min_steps and warmup_steps must be >= 0 (0 turns each off), got "
                f"min_steps={self.min_steps}, warmup_steps={self.warmup_steps}."
            )
        _check_batch_fraction(self.max_batch_fraction)
        check_type(self.device, str, "device")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}.")
        if self.progress is not None:
            check_type(self.progress, bool, "progress")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (for checkpoints and results)."""
        return asdict(self)

    def plan(self, n_windows: int) -> StepPlan:
        """The batch, steps per epoch, epochs and total steps of a run on ``n_windows`` windows.

        Parameters
        ----------
        n_windows : int
            Training windows; under DDP, one process's share (``ceil(N / world_size)``).

        Returns
        -------
        StepPlan
            ``batch_size = min(batch_size, max(2, floor(max_batch_fraction * n_windows)))``;
            ``steps_per_epoch = max(1, n_windows // batch_size)`` (the last incomplete batch is
            dropped); ``epochs = max(self.epochs, ceil(min_steps / steps_per_epoch))``;
            ``total_steps = epochs * steps_per_epoch``, which the learning-rate schedule spans.

        Raises
        ------
        ValueError
            When ``warmup_steps`` is not smaller than ``total_steps`` (no step would be left for
            the cosine decay).
        """
        plan = step_plan(
            n_windows, self.batch_size, self.max_batch_fraction, self.epochs, self.min_steps, drop_last=True
        )
        if self.warmup_steps >= plan.total_steps:
            raise ValueError(
                f"warmup_steps={self.warmup_steps} must be smaller than the run's {plan.total_steps} steps "
                f"({plan.epochs} epochs x {plan.steps_per_epoch} steps of {plan.batch_size} windows); "
                "lower warmup_steps or raise min_steps."
            )
        return plan


def _check_batch_fraction(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"max_batch_fraction must be a number, got {type(value).__name__} instead.")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(
            f"max_batch_fraction must be in (0, 1] (the largest share of the windows in one batch; "
            f"1 = no cap), got {value}."
        )


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier after ``step`` optimiser steps: linear warm-up, then cosine to 0.

    ``(step + 1) / (warmup_steps + 1)`` while ``step < warmup_steps``, so the first step uses
    ``lr / (warmup_steps + 1)`` and the factor is exactly 1 after ``warmup_steps`` steps; then
    ``(1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps))) / 2``, which reaches 0
    after ``total_steps`` steps.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = (min(step, total_steps) - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, config: PretrainConfig, plan: StepPlan
) -> torch.optim.lr_scheduler.LRScheduler:
    """The encoders' per-step schedule of a run (stepped once after every optimiser step).

    ``warmup_steps == 0``: ``CosineAnnealingLR(T_max=plan.total_steps)``, exactly the schedule of
    runs made before warm-up existed. Otherwise a ``LambdaLR`` over :func:`warmup_cosine_factor`;
    its state (the step count) is saved in checkpoints, so a resumed run continues the same curve.
    """
    if config.warmup_steps == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=plan.total_steps)
    warmup, total = config.warmup_steps, plan.total_steps

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup, total)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes
    ----------
    model : M2S
        The trained network (unwrapped from DDP), on the training device, in eval mode.
    history : list of dict
        One entry per epoch: ``epoch`` (1-based), ``step`` (optimiser steps done so far), ``total``
        and each loss component (mean over the epoch's steps on this process), ``club_estimator``
        (estimator NLL), ``lr`` (after the epoch's last step) and ``seconds``.
    checkpoint : Path | None
        The checkpoint written last (None without ``out_dir`` or on ranks other than 0).
    completed : bool
        False when ``stop_after_epoch`` stopped the run early (resume it from ``checkpoint``).
    plan : StepPlan | None
        The run's effective batch, steps per epoch, epochs and total steps (see
        :meth:`PretrainConfig.plan`).
    """

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    completed: bool = True
    plan: StepPlan | None = None


# ---------------------------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and draws progress bars."""
        return self.rank == 0


def distributed_context() -> DistributedContext:
    """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` as torchrun sets them (defaults: one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(
            f"WORLD_SIZE, RANK and LOCAL_RANK must be integers when set (as torchrun sets them): {err}."
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent distributed environment: RANK={rank}, WORLD_SIZE={world}.")
    return DistributedContext(rank=rank, local_rank=local, world_size=world)


def _init_process_group(ctx: DistributedContext, device: torch.device) -> bool:
    """Join the process group torchrun describes; True when this call created it."""
    import torch.distributed as dist

    if not ctx.enabled or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
    logger.info("joined DDP group: rank %d/%d, backend %s", ctx.rank, ctx.world_size, backend)
    return True


def resolve_device(device: str, ctx: DistributedContext | None = None) -> torch.device:
    """The torch device for a config's ``device`` string (see :class:`PretrainConfig`)."""
    ctx = ctx or DistributedContext()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was requested but CUDA is not available; use 'cpu'.")
        if device == "cuda":
            return torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def show_progress(progress: bool | None) -> bool:
    """Resolve a ``progress`` option: None means 'when stderr is a terminal'."""
    return bool(sys.stderr.isatty()) if progress is None else progress


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (code may use the legacy global RNG)
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"]).astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": generator.get_state(),
    }


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(_as_tuple(state["python"]))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": npst["bit_generator"],
            "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
            "has_gauss": npst["has_gauss"],
            "gauss": npst["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["shuffle"])


def _as_tuple(obj):
    return tuple(_as_tuple(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a pretraining checkpoint (tensors and builtin types only; no code is run)."""
    path = Path(check_type(path, (str, Path), "path"))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass the file pretraining wrote.")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not an M2S pretraining checkpoint (format {CHECKPOINT_FORMAT!r})."
        )
    return ckpt


def model_from_checkpoint(
    ckpt: Mapping[str, Any] | str | Path, device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild the pretrained :class:`M2S` of a checkpoint (eval mode)."""
    from models.m2s import M2S

    if not isinstance(ckpt, Mapping):
        ckpt = load_checkpoint(ckpt)
    model = M2S(M2SConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill during the write never leaves a truncated checkpoint


def _check_windows(x: Mapping[str, np.ndarray], model_config: M2SConfig) -> dict[str, torch.Tensor]:
    check_type(x, Mapping, "x")
    names = [m.name for m in model_config.modalities]
    if sorted(x) != sorted(names):
        raise ValueError(
            f"x holds modalities {sorted(x)} but the model config declares {sorted(names)}; "
            "pass one (N, T, D) array per configured modality."
        )
    out, n = {}, None
    for m in model_config.modalities:
        arr = np.asarray(x[m.name])
        expected = (model_config.seq_len, m.dim)
        if arr.ndim != 3 or arr.shape[1:] != expected:
            raise ValueError(
                f"x[{m.name!r}] must have shape (N, {expected[0]}, {expected[1]}), got {arr.shape}."
            )
        if n is not None and arr.shape[0] != n:
            raise ValueError(
                f"every modality needs the same number of windows N; got {n} and {arr.shape[0]}."
            )
        n = arr.shape[0]
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"x[{m.name!r}] contains NaN or infinite values; clean the features first.")
        out[m.name] = torch.as_tensor(arr, dtype=torch.float32)
    if n < 2:
        raise ValueError(f"pretraining needs at least 2 windows, got {n}.")
    return out


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    n = order.numel()
    if n <= batch_size:
        return [order]
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


# ---------------------------------------------------------------------------------------------- training


def pretrain(
    model_config: M2SConfig,
    x: Mapping[str, np.ndarray],
    config: PretrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    stop_after_epoch: int | None = None,
    extra: Mapping[str, Any] | None = None,
    initial_state: Mapping[str, torch.Tensor] | None = None,
) -> PretrainResult:
    """Pretrain an M2S network on paired multimodal windows.

    Parameters
    ----------
    model_config : M2SConfig
        The network; it is built here, after seeding, so a seed fixes the initial weights too.
    x : dict of str to array, shape (N, T, D_m)
        Normalised windows per modality, paired along N (``Windows.x``), float32.
    config : PretrainConfig | None
        Optimisation settings (defaults: the reference's).
    out_dir : path | None
        Folder for ``pretrain.pt`` (written by rank 0 after every ``checkpoint_every`` epochs).
    resume : bool | path
        True: continue from ``out_dir/pretrain.pt`` when it exists; a path: continue from that
        checkpoint. Its network and optimisation settings must equal these (``progress`` aside).
    stop_after_epoch : int | None
        Stop (after checkpointing) once this many epochs are done; resuming later finishes the run.
        It does not change the schedule, which always spans the planned epochs
        (``config.plan(N).epochs``, at least ``config.epochs``).
    extra : dict | None
        JSON-able data stored in the checkpoint under ``"extra"`` (e.g. normalisation statistics).
    initial_state : dict of str to Tensor | None
        Start from these weights (a state dict of an :class:`M2S` built from ``model_config``, e.g. a
        bundle's, for ``m2s-train adapt``) instead of the seeded initialisation; the optimisers start
        fresh. A checkpoint being resumed wins over it.

    Returns
    -------
    result : PretrainResult
    """
    from models.m2s import M2S

    config = PretrainConfig() if config is None else check_type(config, PretrainConfig, "config")
    check_type(model_config, M2SConfig, "model_config")
    if len(model_config.modalities) < 2:
        raise ValueError(
            f"pretraining pairs modalities and needs at least 2, the config has {len(model_config.modalities)}."
        )
    data = _check_windows(x, model_config)
    if stop_after_epoch is not None and ensure_int(stop_after_epoch, "stop_after_epoch") < 1:
        raise ValueError(f"stop_after_epoch must be >= 1, got {stop_after_epoch}.")
    ckpt_path = None if out_dir is None else Path(out_dir) / CHECKPOINT_NAME
    resume_path: Path | None = None
    if resume is True:
        if ckpt_path is None:
            raise ValueError("resume=True needs out_dir (the checkpoint is read from out_dir/pretrain.pt).")
        resume_path = ckpt_path if ckpt_path.is_file() else None
    elif resume:
        resume_path = Path(check_type(resume, (str, Path), "resume"))

    ctx = distributed_context()
    device = resolve_device(config.device, ctx)
    owns_group = _init_process_group(ctx, device)
    try:
        result = _run(
            M2S, model_config, data, config, device, ctx, ckpt_path, resume_path, stop_after_epoch, extra,
            initial_state,
        )  # fmt: skip
        if owns_group:
            import torch.distributed as dist

            # Every rank finishes its last collective before any tears the group down: a rank that
            # exits while its peer's gloo threads still talk to it aborts ("terminate called without
            # an active exception"), seen once in CI.
            dist.barrier()
        return result
    finally:
        if owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(
    M2S,
    model_config,
    data,
    config,
    device,
    ctx,
    ckpt_path,
    resume_path,
    stop_after_epoch,
    extra,
    initial_state,
):
    seed_everything(config.seed)
    model = M2S(model_config)
    if initial_state is not None:
        try:
            model.load_state_dict(initial_state)
        except RuntimeError as err:
            raise ValueError(
                f"initial_state does not fit the network of model_config: {str(err).splitlines()[0]} Pass the "
                "state dict of an M2S built from this config."
            ) from None
    model = model.to(device)
    torch.manual_seed(config.seed + ctx.rank)  # dropout masks differ between DDP ranks, as usual
    shuffle_gen = torch.Generator().manual_seed(config.seed)

    use_amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    optimizer = torch.optim.Adam(model.encoder_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    est_params = list(model.estimator_parameters())
    est_optimizer = torch.optim.Adam(est_params, lr=config.estimator_lr) if est_params else None
    fit_club = model_config.w_club > 0 and config.club_steps > 0 and est_optimizer is not None

    n = next(iter(data.values())).shape[0]
    sampler = None
    if ctx.enabled:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank, seed=config.seed)
        n_local = len(sampler)
    else:
        n_local = n
    plan = config.plan(n_local)
    scheduler = make_lr_scheduler(optimizer, config, plan)

    start_epoch, step, history = 0, 0, []
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path)
        _check_resumable(ckpt, model_config, config)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if est_optimizer is not None and ckpt["estimator_optimizer"] is not None:
            est_optimizer.load_state_dict(ckpt["estimator_optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, history = int(ckpt["epoch"]), int(ckpt["step"]), list(ckpt["history"])
        _set_rng_state(ckpt["rng"], shuffle_gen)
        logger.info("resumed pretraining from %s after epoch %d/%d", resume_path, start_epoch, plan.epochs)

    data = {m: t.to(device) for m, t in data.items()}
    net: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Ablations leave some parameters out of the loss; the estimators never enter it.
        net = DDP(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    autocast = (
        (lambda: torch.autocast(device_type="cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext
    )
    progress = show_progress(config.progress) and ctx.is_main
    if ckpt_path is not None and ctx.is_main:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    logger.info(
        "pretraining %s on %d windows (batch %d, %d steps/epoch, %d epochs [epochs=%d, min_steps=%d], "
        "%d steps, warm-up %d, device %s, AMP %s, world size %d)",
        "+".join(m.name for m in model_config.modalities),
        n,
        plan.batch_size,
        plan.steps_per_epoch,
        plan.epochs,
        config.epochs,
        config.min_steps,
        plan.total_steps,
        config.warmup_steps,
        device,
        amp_dtype if use_amp else "off",
        ctx.world_size,
    )
    written: Path | None = None
    completed = True
    for epoch in range(start_epoch, plan.epochs):
        t0 = time.perf_counter()
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
        else:
            order = torch.randperm(n, generator=shuffle_gen)
        sums: dict[str, torch.Tensor] = {}
        batches = _batches(order, plan.batch_size)
        bar = _progress_bar(len(batches), f"pretrain {epoch + 1}/{plan.epochs}", progress)
        for i, idx in enumerate(batches):
            idx = idx.to(device)
            batch = {m: t.index_select(0, idx) for m, t in data.items()}
            with autocast():
                out = net(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out.total).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(
                    [p for g in optimizer.param_groups for p in g["params"]], config.grad_clip
                )
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            est_loss = torch.zeros((), device=device)
            if fit_club:
                detached = {m: (a.detach().float(), b.detach().float()) for m, (a, b) in out.detached.items()}
                for _ in range(config.club_steps):
                    est_optimizer.zero_grad(set_to_none=True)
                    est_loss = model.club_estimator_loss(detached)
                    est_loss.backward()
                    if ctx.enabled:
                        _all_reduce_grads(est_params, ctx.world_size)
                    est_optimizer.step()
            logged = {
                "total": out.total.detach().float(),
                **{k: v.detach().float() for k, v in out.losses.items()},
            }
            logged["club_estimator"] = est_loss.detach().float()
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + v
            if bar is not None:
                bar.update(1)
                if i % 5 == 0 or i == len(batches) - 1:
                    bar.set_postfix({k: f"{float(v) / (i + 1):.3f}" for k, v in sums.items()}, refresh=False)
        if bar is not None:
            bar.close()
        record = {"epoch": epoch + 1, "step": step, **{k: float(v) / len(batches) for k, v in sums.items()}}
        record["lr"] = float(scheduler.get_last_lr()[0])
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        logger.debug(
            "epoch %d/%d: %s",
            epoch + 1,
            plan.epochs,
            " ".join(
                f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "step", "lr", "seconds")
            ),
        )
        if not math.isfinite(record["total"]):
            raise RuntimeError(
                f"pretraining diverged at epoch {epoch + 1} (total loss {record['total']}); lower lr or "
                "check the normalisation of the inputs."
            )
        done = epoch + 1
        stop = stop_after_epoch is not None and done >= stop_after_epoch and done < plan.epochs
        if (
            ckpt_path is not None
            and ctx.is_main
            and (done % config.checkpoint_every == 0 or done == plan.epochs or stop)
        ):
            _save_atomic(
                {
                    "format": CHECKPOINT_FORMAT,
                    "version": 1,
                    "model_config": model_config.to_dict(),
                    "pretrain_config": config.to_dict(),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "estimator_optimizer": None if est_optimizer is None else est_optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": done,
                    "step": step,
                    "plan": plan._asdict(),
                    "history": history,
                    "rng": _rng_state(shuffle_gen),
                    "extra": dict(extra or {}),
                },
                ckpt_path,
            )
            written = ckpt_path
        if stop:
            completed = False
            logger.info("stopping after epoch %d/%d as asked; resume from %s", done, plan.epochs, written)
            break
    if history:
        logger.info(
            "pretraining done after epoch %d/%d (step %d/%d): %s",
            history[-1]["epoch"],
            plan.epochs,
            step,
            plan.total_steps,
            " ".join(
                f"{k}={v:.4f}" for k, v in history[-1].items() if k not in ("epoch", "step", "lr", "seconds")
            ),
        )
    model.eval()
    return PretrainResult(model=model, history=history, checkpoint=written, completed=completed, plan=plan)


def _all_reduce_grads(params: list[nn.Parameter], world_size: int) -> None:
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)


def _check_resumable(ckpt: Mapping[str, Any], model_config: M2SConfig, config: PretrainConfig) -> None:
    if ckpt["model_config"] != model_config.to_dict():
        raise ValueError(
            "the checkpoint was trained with a different network config; resume with the same "
            "M2SConfig or start a new run in another folder."
        )
    saved = {k: v for k, v in {**_ADDED_SETTINGS, **ckpt["pretrain_config"]}.items() if k != "progress"}
    now = {k: v for k, v in config.to_dict().items() if k != "progress"}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise ValueError(
            f"the checkpoint was trained with different pretraining settings ({', '.join(diff)}); "
            "resume with the same PretrainConfig."
        )


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
