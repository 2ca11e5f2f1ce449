"""Pretraining step throughput of M2S: ours vs a baseline with the authors' demo-code cost structure.

Reference dimensions: EEG 62 x 5 (310), EYE 33, T = 5, D = 128, 4 blocks, d_ff 1024, batch 64, all four
losses on. Both are timed in the same run, on the same data, with the same weights.

ours      one forward of every modality (all losses), one backward, Adam step, then 3 CLUB-estimator
          updates on the detached (z_er, z_ei) of that forward.
baseline  what the authors' demo procedure costs per step (docs/design/M2S-SPEC.md §4), emulated with our modules:
          (1) the forward + backward + Adam step, but STS attention computed step by step (a Python loop
          over t that indexes x_t, x_{t-1}, x_1 and attends per step) and M2M CPC in float64;
          (2) 3 CLUB-estimator updates, each after a *full extra forward* of the model (to regenerate
          z_er, z_ei), as the reference does. The extra forwards run under ``torch.no_grad()``,
          the cheapest way they could run, so the ratio is a lower bound; the variant with autograd
          left on is printed too.
          It cannot reproduce: the authors' band-major/channel-major regrouping copies, their data
          loader, CUDA-specific behaviour (their code calls .cuda()), or anything in files we have not
          seen (their CLUB.py / M2MCPC.py / models.py are emulated from the paper and the spec).

Prints one line per method, the ratio and, as the LAST line, ``samples_per_s=<ours>``.
Usage: python benchmarks/pretrain_step.py [--steps N] [--warmup N] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from einops import rearrange

from models.attention import ChannelAttention
from models.config import M2SConfig, ModalityConfig
from models.m2s import M2S

BATCH = 64
CONFIG = M2SConfig(
    modalities=(ModalityConfig(name="eeg", dim=310, n_channels=62), ModalityConfig(name="eye", dim=33)),
)


class StepwiseSTSAttention(ChannelAttention):
    """STS attention computed one time step at a time with full-width heads (baseline); same weights."""

    def forward(self, x):
        outputs = []
        for t in range(x.shape[1]):  # per-step indexing, as a direct reading of eqs. 4-7 does
            steps = (x[:, t], x[:, max(t - 1, 0)], x[:, 0])
            q = self.to_q(x[:, t])
            k = sum(self.to_k(a) for a in steps) / 3.0  # mean of the projections
            v = sum(self.to_v(a) for a in steps) / 3.0
            q, k, v = (rearrange(a, "b c (h e) -> b h c e", h=self.n_heads) for a in (q, k, v))
            w = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
            outputs.append(self.dropout(self.to_out(rearrange(w @ v, "b h c e -> b c (h e)"))))
        return torch.stack(outputs, dim=1)


class Float64CPC(torch.nn.Module):
    """Run an M2MCPC module in float64 (the reference's CPC dtype) and return a float32 loss."""

    def __init__(self, cpc):
        super().__init__()
        self.cpc = cpc.double()

    def forward(self, z, **kwargs):
        return self.cpc({k: v.double() for k, v in z.items()}, **kwargs).float()


def make_baseline(ours: M2S) -> M2S:
    """A copy of ``ours`` with stepwise STS attention and a float64 CPC (identical weights)."""
    base = M2S(CONFIG)
    base.load_state_dict(ours.state_dict())
    for module in base.modules():
        if isinstance(module, ChannelAttention) and module.temporal_sparse:
            module.__class__ = StepwiseSTSAttention  # same parameters, stepwise full-width forward
    base.cpc = Float64CPC(base.cpc)
    return base


def make_step(model: M2S, *, extra_forwards: bool, extra_grad: bool = False):
    opt = torch.optim.Adam(model.encoder_parameters(), lr=1e-4, weight_decay=1e-4)
    est_opt = torch.optim.Adam(model.estimator_parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)

    def step(batch):
        opt.zero_grad(set_to_none=True)
        out = model(batch, generator=generator)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(model.encoder_parameters(), 1.0)
        opt.step()
        for _ in range(3):
            detached = out.detached
            if extra_forwards:  # the reference re-runs the whole model to get fresh features
                with torch.set_grad_enabled(extra_grad):
                    detached = model(batch, generator=generator).detached
            est_opt.zero_grad(set_to_none=True)
            model.club_estimator_loss(detached).backward()
            est_opt.step()

    return step


def median_time(step, batch, *, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step(batch)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per method (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = M2S(CONFIG).train()
    baseline = make_baseline(ours).train()
    batch = {"eeg": torch.randn(BATCH, CONFIG.seq_len, 310), "eye": torch.randn(BATCH, CONFIG.seq_len, 33)}

    print(
        f"# {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, threads {args.threads}"
    )
    print(
        f"# batch {BATCH}, EEG 62x5 + EYE 33, T={CONFIG.seq_len}, D={CONFIG.d_model}, {CONFIG.n_blocks} blocks"
    )
    t_ours = median_time(make_step(ours, extra_forwards=False), batch, steps=args.steps, warmup=args.warmup)
    base_steps = max(3, args.steps // 3)
    t_base = median_time(make_step(baseline, extra_forwards=True), batch, steps=base_steps, warmup=1)
    t_base_grad = median_time(
        make_step(baseline, extra_forwards=True, extra_grad=True), batch, steps=base_steps, warmup=1
    )
    print(f"{'method':<58}{'median ms':>10}{'samples/s':>11}")
    rows = [
        ("baseline: ref cost structure, extra forwards no_grad", t_base),
        ("baseline: ref cost structure, extra forwards with autograd", t_base_grad),
        ("ours: one forward + backward + 3 estimator updates", t_ours),
    ]
    for name, t in rows:
        print(f"{name:<58}{t * 1e3:>10.1f}{BATCH / t:>11.1f}")
    print(f"ratio={t_base / t_ours:.2f}x (vs the no_grad baseline; {t_base_grad / t_ours:.2f}x vs autograd)")
    print(f"samples_per_s={BATCH / t_ours:.1f}")


if __name__ == "__main__":
    main()
