"""Single-modality fine-tuning: a classifier on the frozen 32-d embedding of the training modality.

M2S-SPEC §5: the ER encoder and projection of the training modality A are frozen
(``requires_grad=False`` and eval mode, so dropout is off and nothing updates), and an
:class:`~models.m2s.EmotionClassifier` is trained on the projected embedding. Because the frozen
embedder is deterministic, the embeddings of the training and validation windows are computed once
and the classifier trains on them: mathematically the same as running the embedder every step,
many times faster.

Model selection is honest: the epoch kept is the one with the best **validation** balanced
accuracy (ties: lower validation loss, then the earlier epoch), and training stops early after
``patience`` epochs without improvement. The reference code's optimistic protocol (keep the epoch
that scores best on the *test* set) is available only through ``optimistic_test_selection=True``
and is labelled as such in every result.

The supervised baseline "S" (:func:`train_supervised`) trains one modality's ER encoder, projection
and classifier end to end from labels, with the same selection rules.

Like pretraining, classifier training can be budgeted in optimiser steps (``FinetuneConfig.min_steps``
and ``max_batch_fraction``): a few hundred training windows with a batch of 256 make one or two
steps per epoch, so an epoch budget alone can leave the classifier barely trained.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from signals._checks import check_range, check_type, ensure_int
from training.metrics import balanced_accuracy
from training.pretrain import (
    StepPlan,
    _check_batch_fraction,
    resolve_device,
    seed_everything,
    show_progress,
    step_plan,
)

logger = logging.getLogger(__name__)

SELECTED_ON_VALIDATION = "validation"
SELECTED_ON_LAST = "last epoch (no validation trials)"
SELECTED_ON_TEST = "TEST SET (optimistic reference protocol; not an honest estimate)"


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of classifier training (fine-tuning and the supervised baseline).

    Attributes
    ----------
    epochs : int
        Maximum epochs (raised when ``min_steps`` needs more).
    batch_size : int
        Windows per step (a last batch of one window is skipped: BatchNorm needs two), capped by
        ``max_batch_fraction``.
    lr, weight_decay : float
        Adam.
    patience : int
        Stop after this many epochs without a better validation score; 0 disables early stopping.
    seed : int
        Seeds the classifier's initial weights and the batch order.
    device : str
        'auto', 'cpu', 'cuda' or 'cuda:N'.
    progress : bool | None
        tqdm bar over epochs; None = only when stderr is a terminal.
    optimistic_test_selection : bool
        Select the epoch on the TEST windows, as the reference code does. Off by default; results
        produced with it are labelled optimistic.
    min_steps : int
        Run at least ``ceil(min_steps / steps_per_epoch)`` epochs (and at least ``epochs``), so that
        training makes at least this many optimiser steps however few windows there are: with
        small data and a large batch an epoch is a single step. Early stopping (``patience``) can
        still end training sooner when epochs are selected on held-out windows; without them every
        planned epoch runs and the last is kept. 0 (default): ``epochs`` alone.
    max_batch_fraction : float
        In (0, 1]. The effective batch is ``min(batch_size, max(2, floor(max_batch_fraction * N)))``
        for N training windows, so small data still gets several steps per epoch. 1 (default): no
        cap beyond ``batch_size``.
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 20
    seed: int = 0
    device: str = "auto"
    progress: bool | None = None
    optimistic_test_selection: bool = False
    min_steps: int = 0
    max_batch_fraction: float = 1.0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience", "seed", "min_steps"):
            ensure_int(getattr(self, name), name)
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(
                f"epochs must be >= 1 and batch_size >= 2, got epochs={self.epochs}, batch_size={self.batch_size}."
            )
        if self.patience < 0 or self.seed < 0:
            raise ValueError(f"patience and seed must be >= 0, got {self.patience} and {self.seed}.")
        check_range(self.lr, "lr", low=0, low_inclusive=False)
        check_range(self.weight_decay, "weight_decay", low=0)
        check_type(self.device, str, "device")
        check_type(self.optimistic_test_selection, bool, "optimistic_test_selection")
        if self.min_steps < 0:
            raise ValueError(
                f"min_steps must be >= 0 (0 = epochs alone set the length), got {self.min_steps}."
            )
        _check_batch_fraction(self.max_batch_fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    def plan(self, n_windows: int) -> StepPlan:
        """The batch, steps per epoch, (maximum) epochs and total steps on ``n_windows`` training windows.

        Returns
        -------
        StepPlan
            ``batch_size = min(batch_size, max(2, floor(max_batch_fraction * n_windows)))``;
            ``steps_per_epoch`` counts the batches of at least 2 windows (the last, smaller batch
            included); ``epochs = max(self.epochs, ceil(min_steps / steps_per_epoch))`` (early
            stopping may end sooner); ``total_steps = epochs * steps_per_epoch``.
        """
        return step_plan(
            n_windows, self.batch_size, self.max_batch_fraction, self.epochs, self.min_steps, drop_last=False
        )


@dataclass
class FinetuneResult:
    """A trained classifier and how its epoch was chosen.

    Attributes
    ----------
    classifier : nn.Module
        EmotionClassifier (fine-tuning) or SupervisedModel (baseline), eval mode, on the device.
    modality : str
        The training modality A.
    best_epoch : int
        1-based epoch whose weights were kept.
    selected_on : str
        :data:`SELECTED_ON_VALIDATION`, :data:`SELECTED_ON_LAST` or :data:`SELECTED_ON_TEST`.
    history : list of dict
        Per epoch: ``epoch``, ``step`` (optimiser steps done so far), ``loss`` (training),
        ``val_balanced_accuracy`` and ``val_loss`` (NaN without validation windows) and, only under
        the optimistic protocol, ``test_balanced_accuracy``.
    """

    classifier: nn.Module
    modality: str
    best_epoch: int
    selected_on: str
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def optimistic(self) -> bool:
        """True when the epoch was selected on test data."""
        return self.selected_on == SELECTED_ON_TEST


def freeze_embedder(model: nn.Module, modality: str) -> nn.Module:
    """Freeze modality ``modality``'s ER encoder + projection in place and return that embedder.

    Every parameter of the embedder gets ``requires_grad=False`` and the module is put in eval mode
    (no dropout, no statistics updates).
    """
    embedder = model.embedder(modality)
    for p in embedder.parameters():
        p.requires_grad_(False)
    embedder.eval()
    return embedder


@torch.no_grad()
def embed(
    embedder: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 1024, device=None
) -> torch.Tensor:
    """Run a (frozen) embedder over windows in batches.

    Parameters
    ----------
    embedder : nn.Module
        Maps (B, T, D) to (B, proj_dim).
    x : array, shape (N, T, D)
    batch_size : int
    device : torch.device | None
        Device to compute on (None: the embedder's).

    Returns
    -------
    z : Tensor, shape (N, proj_dim), float32, on ``device``
    """
    return _run_frozen(embedder, embedder, x, batch_size, device)


@torch.no_grad()
def embed_latent(
    embedder: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 1024, device=None
) -> torch.Tensor:
    """The mean-pooled ER embedding *before* the projection, in batches: the in-modal features.

    The contrastive loss constrains only the projection (it aligns modalities there), so an
    in-modal head can read the encoder's own output, which keeps class information the alignment
    may discard (``in_modal_features='latent'`` of the subject and population regimes).

    Parameters
    ----------
    embedder : nn.Module
        An :class:`~models.m2s.Embedder` (its ``encoder`` maps (B, T, D) to (B, T, d_model)).
    x : array, shape (N, T, D)
    batch_size : int
    device : torch.device | None

    Returns
    -------
    z : Tensor, shape (N, d_model), float32, on ``device``
    """
    encoder = embedder.encoder
    return _run_frozen(encoder, lambda batch: encoder(batch).mean(dim=1), x, batch_size, device)


def _run_frozen(module: nn.Module, forward, x, batch_size: int, device) -> torch.Tensor:
    """``forward`` over ``x`` in batches with ``module`` in eval mode (its mode restored after), float32."""
    if device is None:
        device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    out = [forward(x[i : i + batch_size].to(device)).float() for i in range(0, x.shape[0], batch_size)]
    module.train(was_training)
    if not out:
        raise ValueError("no windows to embed (x has N = 0).")
    return torch.cat(out)


def _check_xy(x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name} windows must be x (N, T, D) with labels y (N,), got x {x.shape} and y {y.shape}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} has no windows; check the split and seq_len.")
    return x, y.astype(np.int64)


def _train_loop(
    net: nn.Module,
    params: list[nn.Parameter],
    forward_train: Callable[[torch.Tensor], torch.Tensor],
    forward_eval: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    test: tuple[torch.Tensor, torch.Tensor] | None,
    n_classes: int,
    config: FinetuneConfig,
    desc: str,
) -> tuple[int, str, list[dict[str, float]]]:
    """Shared epoch loop; leaves ``net`` holding the selected weights. Returns (best_epoch, selected_on, history)."""
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(config.seed)
    x_tr, y_tr = train
    n = x_tr.shape[0]
    plan = config.plan(n)
    logger.debug(
        "%s: %d windows, batch %d, %d steps/epoch, up to %d epochs (%d steps)",
        desc,
        n,
        plan.batch_size,
        plan.steps_per_epoch,
        plan.epochs,
        plan.total_steps,
    )
    if config.optimistic_test_selection:
        if test is None:
            raise ValueError("optimistic_test_selection=True needs the test windows (pass test=...).")
        select, selected_on = test, SELECTED_ON_TEST
        logger.warning("%s: selecting the epoch on TEST data (optimistic reference protocol)", desc)
    elif val is not None:
        select, selected_on = val, SELECTED_ON_VALIDATION
    else:
        select, selected_on = None, SELECTED_ON_LAST
        logger.warning("%s: no validation windows; keeping the last epoch", desc)

    best_key, best_state, best_epoch, since_best = None, None, plan.epochs, 0
    step = 0
    history: list[dict[str, float]] = []
    bar = None
    if show_progress(config.progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=plan.epochs, desc=desc, leave=False, dynamic_ncols=True)
    for epoch in range(1, plan.epochs + 1):
        net.train()
        order = torch.randperm(n, generator=gen).to(x_tr.device)
        total, count = 0.0, 0
        for i in range(0, n, plan.batch_size):
            idx = order[i : i + plan.batch_size]
            if idx.numel() < 2:  # BatchNorm cannot normalise a single sample
                continue
            logits = forward_train(x_tr.index_select(0, idx))
            loss = loss_fn(logits, y_tr.index_select(0, idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        record = {"epoch": epoch, "step": step, "loss": total / max(count, 1)}
        net.eval()
        for part, data in (("val", val), ("test", test if config.optimistic_test_selection else None)):
            if data is None:
                if part == "val":
                    record["val_balanced_accuracy"] = float("nan")
                    record["val_loss"] = float("nan")
                continue
            with torch.no_grad():
                logits = forward_eval(data[0])
                y_np = data[1].cpu().numpy()
                record[f"{part}_balanced_accuracy"] = balanced_accuracy(
                    y_np, logits.argmax(1).cpu().numpy(), n_classes
                )
                record[f"{part}_loss"] = float(loss_fn(logits, data[1]))
        history.append(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", val=f"{record['val_balanced_accuracy']:.3f}")
        if select is None:
            continue
        prefix = "test" if select is test else "val"
        key = (record[f"{prefix}_balanced_accuracy"], -record[f"{prefix}_loss"])
        if best_key is None or key > best_key:
            best_key, best_epoch, since_best = key, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            since_best += 1
            if config.patience and since_best >= config.patience:
                logger.debug("%s: early stop at epoch %d (best %d)", desc, epoch, best_epoch)
                break
    if bar is not None:
        bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    net.eval()
    return best_epoch, selected_on, history


def finetune(
    model: nn.Module,
    modality: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    n_classes: int,
    config: FinetuneConfig | None = None,
    *,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> FinetuneResult:
    """Train an EmotionClassifier on the frozen embedding of modality ``modality``.

    Parameters
    ----------
    model : M2S
        Pretrained network. The embedder of ``modality`` is frozen IN PLACE (see
        :func:`freeze_embedder`); nothing of ``model`` changes otherwise.
    modality : str
        Training modality A.
    train, val : (x, y)
        Windows ``x`` (N, T, D_A), normalised, and their classes ``y`` (N,). ``val`` may be None
        (then the last epoch is kept, and the result says so).
    n_classes : int
    config : FinetuneConfig | None
    test : (x, y) | None
        Only read under ``config.optimistic_test_selection``.

    Returns
    -------
    FinetuneResult
    """
    from models.m2s import EmotionClassifier

    config = FinetuneConfig() if config is None else check_type(config, FinetuneConfig, "config")
    check_type(modality, str, "modality")
    n_classes = ensure_int(n_classes, "n_classes")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}.")
    x_tr, y_tr = _check_xy(*train, "train")
    device = resolve_device(config.device)
    embedder = freeze_embedder(model, modality)
    model_device = next(embedder.parameters()).device
    if model_device != device:
        embedder.to(device)

    def encode(part):
        if part is None or len(part[1]) == 0:
            return None
        x, y = _check_xy(*part, "data")
        return embed(embedder, x, device=device), torch.as_tensor(y, device=device)

    t0 = time.perf_counter()
    z_train, z_val = encode((x_tr, y_tr)), encode(val)
    z_test = encode(test) if config.optimistic_test_selection else None
    seed_everything(config.seed)
    proj_dim = z_train[0].shape[1]
    classifier = EmotionClassifier(proj_dim, n_classes).to(device)
    best_epoch, selected_on, history = _train_loop(
        classifier,
        list(classifier.parameters()),
        classifier,
        classifier,
        z_train,
        z_val,
        z_test,
        n_classes,
        config,
        f"finetune {modality}",
    )
    logger.info(
        "fine-tuned %s classifier: epoch %d selected on %s (%.1f s)",
        modality,
        best_epoch,
        selected_on,
        time.perf_counter() - t0,
    )
    return FinetuneResult(classifier, modality, best_epoch, selected_on, history)


def train_supervised(
    model_config,
    modality: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    n_classes: int,
    config: FinetuneConfig | None = None,
    *,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> FinetuneResult:
    """Supervised baseline S: one modality's ER encoder + projection + classifier, trained end to end.

    Parameters are those of :func:`finetune`, except ``model_config`` (an :class:`M2SConfig` that
    holds ``modality``) replaces the pretrained model. The returned ``classifier`` is the whole
    :class:`~models.m2s.SupervisedModel` (windows in, logits out).
    """
    from models.config import M2SConfig
    from models.m2s import SupervisedModel

    config = FinetuneConfig() if config is None else check_type(config, FinetuneConfig, "config")
    check_type(model_config, M2SConfig, "model_config")
    n_classes = ensure_int(n_classes, "n_classes")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}.")
    model_config.modality(modality)  # KeyError naming the known modalities
    x_tr, y_tr = _check_xy(*train, "train")
    device = resolve_device(config.device)

    def to_dev(part):
        if part is None or len(part[1]) == 0:
            return None
        x, y = _check_xy(*part, "data")
        return torch.as_tensor(x, dtype=torch.float32, device=device), torch.as_tensor(y, device=device)

    seed_everything(config.seed)
    net = SupervisedModel(model_config, modality, n_classes).to(device)

    @torch.no_grad()
    def forward_eval(x):
        return torch.cat([net(x[i : i + 1024]) for i in range(0, x.shape[0], 1024)])

    t0 = time.perf_counter()
    best_epoch, selected_on, history = _train_loop(
        net,
        list(net.parameters()),
        net,
        forward_eval,
        to_dev((x_tr, y_tr)),
        to_dev(val),
        to_dev(test) if config.optimistic_test_selection else None,
        n_classes,
        config,
        f"supervised {modality}",
    )
    logger.info(
        "supervised %s: epoch %d selected on %s (%.1f s)",
        modality,
        best_epoch,
        selected_on,
        time.perf_counter() - t0,
    )
    return FinetuneResult(net, modality, best_epoch, selected_on, history)
