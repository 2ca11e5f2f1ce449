"""Regenerate the documentation's figures under docs/img/.

    .venv/bin/python docs/img/make_figures.py                 # all three
    .venv/bin/python docs/img/make_figures.py dataflow live-latency
    .venv/bin/python docs/img/make_figures.py dashboard       # needs /usr/bin/chromium

- ``dataflow.png``: the packages and the edges between them (LSL, REST, WebSocket), drawn with matplotlib.
- ``live-latency.png``: the live path's latency against the number of EEG streams, from the numbers of
  benchmarks/README.md ("Live path: live_latency.py", 2 cores, no GPU), copied below; not a new run.
- ``dashboard.png``: the real dashboard in headless Chromium while ``scripts/demo`` streams the simulator
  into ``m2s-serve``; Chromium is driven by the dashboard test's own DevTools driver
  (``tests.service.test_dashboard._Chromium``), imported, not copied.

matplotlib is in the ``train`` extra (``scripts/bootstrap dev,train``).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def dataflow(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 4.6), dpi=110)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 46)
    ax.axis("off")
    blue, orange, green, grey = "#0072B2", "#E69F00", "#009E73", "#555555"

    def box(x, y, w, h, title, body, colour):
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0.4,rounding_size=1.2", fc=colour + "22", ec=colour, lw=1.6
            )
        )
        ax.text(
            x + w / 2, y + h - 2.2, title, ha="center", va="top", fontsize=10.5, weight="bold", color=colour
        )
        ax.text(
            x + w / 2,
            y + h - 5.6,
            body,
            ha="center",
            va="top",
            fontsize=7.6,
            color="#222222",
            linespacing=1.3,
        )

    def arrow(a, b, label="", colour=grey, rad=0.0, dy=1.2, style="-|>", ls="-"):
        ax.add_patch(
            FancyArrowPatch(
                a,
                b,
                arrowstyle=style,
                mutation_scale=13,
                lw=1.4,
                color=colour,
                connectionstyle=f"arc3,rad={rad}",
                linestyle=ls,
                shrinkA=2,
                shrinkB=2,
            )
        )
        if label:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, label, ha="center", va="bottom", fontsize=7.8,
                    color=colour, style="italic")  # fmt: skip

    # Offline row: signals -> models -> training -> bundle.
    box(
        1, 30, 19, 13, "signals", "FeatureSpec, DE, eye,\nECG/HRV, PPS; batch =\nstreaming; XDF/EDF I/O", blue
    )
    box(27, 30, 19, 13, "models", "the M2S network;\nbundle manifest,\nmodel repository", blue)
    box(
        53,
        30,
        19,
        13,
        "training",
        "datasets, protocols,\npretrain / finetune /\nevaluate / adapt, export",
        blue,
    )
    box(
        79,
        30,
        20,
        13,
        "bundle (ONNX)",
        "<name>/<version>/\nmanifest.json + graphs\n+ FeatureSpec + norm.",
        orange,
    )
    arrow((20.8, 36.5), (26.2, 36.5))
    arrow((46.8, 36.5), (52.2, 36.5))
    arrow((72.8, 36.5), (78.2, 36.5), "export")

    # Live row: lab streams -> service -> clients.
    box(
        1,
        4,
        19,
        15,
        "lab / simulator",
        "EEG, gaze + pupil, ECG,\nmarkers as LSL outlets\n(m2s simulate, m2s replay)",
        green,
    )
    box(33, 4, 27, 15, "service  (m2s-serve)", "per stream: the bundle's own\nFeaturePipeline → ONNX Runtime\n"
        "→ EmotionState; calibration,\nrecordings, hot reload, metrics", orange)  # fmt: skip
    box(
        74,
        4,
        25,
        15,
        "clients",
        "dashboard (GET /), Python SDK,\nm2s CLI, experiments,\nPrometheus (/metrics)",
        green,
    )
    arrow((20.8, 11.5), (32.2, 11.5), "LSL", green)
    arrow((60.8, 13.5), (73.2, 13.5), "WebSocket /ws", green, dy=0.6)
    arrow((73.2, 8.5), (60.8, 8.5), "REST", green, dy=-3.4)

    # Between the rows.
    arrow((88, 29.2), (57, 19.8), "", orange, rad=-0.1)
    ax.text(83, 20.6, "load, poll for new versions\n(hot reload)", fontsize=7.8, color=orange, style="italic")
    arrow((48, 19.8), (60, 29.2), "", grey, ls=":")
    ax.text(
        52.3,
        23.4,
        "recordings (XDF)\n→ m2s-train adapt",
        fontsize=7.8,
        color=grey,
        style="italic",
        ha="right",
    )
    arrow((37, 19.8), (34, 29.2), "", blue, ls="--")
    ax.text(
        34.2,
        23.6,
        "imports signals,\nmodels (no torch)",
        fontsize=7.8,
        color=blue,
        style="italic",
        ha="right",
    )

    fig.tight_layout(pad=0.2)
    fig.savefig(out, dpi=110)
    plt.close(fig)


# benchmarks/README.md, "Live path: live_latency.py": random phases (1-100 streams, then the 150 and 200 rows) and
# --phase aligned (100 streams), streams: (p50, p99) ms. At 200 streams the load generator on the same 2 cores
# falls 250 ms behind: that point measures the machine, not only the service.
LIVE_RANDOM = {1: (3.41, 5.12), 10: (2.41, 7.90), 50: (2.03, 6.97), 100: (2.48, 7.94), 150: (3.76, 19.30),
               200: (29.13, 93.21)}  # fmt: skip
LIVE_ALIGNED = {100: (10.22, 34.57)}
LIVE_BEFORE = {1: (6.94, 11.67), 100: (62.47, 137.59)}  # the code before issue 10, same table


def live_latency(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    for data, label, colour, marker in (
        (LIVE_RANDOM, "random phases", "#0072B2", "o"),
        (LIVE_ALIGNED, "phases aligned (worst case)", "#D55E00", "s"),
        (LIVE_BEFORE, "before issue 10 (random phases)", "#999999", "^"),
    ):
        n = sorted(data)
        ax.plot(n, [data[k][1] for k in n], marker=marker, color=colour, label=f"p99, {label}")
        ax.plot(n, [data[k][0] for k in n], marker=marker, color=colour, ls=":", alpha=0.7, lw=1)
    ax.axhline(50, color="#333333", lw=1, ls="--")
    ax.text(2, 53, "target: p99 ≤ 50 ms", fontsize=8)
    ax.annotate(
        "2 cores saturated\n(load generator behind)",
        (200, 93.21),
        (148, 120),
        fontsize=7.5,
        arrowprops={"arrowstyle": "->", "color": "#555555"},
    )
    ax.set_xlabel("EEG streams attached (62 ch @ 200 Hz each)")
    ax.set_ylabel("latency, ms (dotted: p50)")
    ax.set_yscale("log")
    ax.set_title("Last sample pushed → EmotionState at the WebSocket, 2 CPU cores", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(1.5, 300)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard(out: Path, settle_s: float = 90.0) -> None:
    sys.path.insert(0, str(ROOT))
    from PIL import Image

    from tests.service.test_dashboard import _Chromium  # the dashboard test's CDP driver

    port = _free_port()
    env = {**os.environ, "M2S_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo"), "--source-id-prefix", f"m2s-docs-{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if demo.poll() is not None:
                raise RuntimeError(f"scripts/demo exited with {demo.returncode}")
            try:
                urllib.request.urlopen(f"{base}/v2/health/ready", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not become ready") from None
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as profile:
            browser = _Chromium(Path(profile))
            try:
                # Tall enough for the three stream cards (EEG, eye, ECG) one below the other.
                browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=1800, deviceScaleFactor=1,
                             mobile=False)  # fmt: skip
                browser.navigate(base + "/")
                browser.wait_for("document.body.dataset.ws === 'open'", timeout=20)
                browser.wait_for("document.querySelectorAll('[data-stream-id]').length >= 3", timeout=30)
                time.sleep(settle_s)  # let the plots fill
                png = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
                png.quantize(256).save(out, optimize=True)  # a UI has few colours: a third of the size
            finally:
                browser.close()
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)


FIGURES = {"dataflow": dataflow, "live-latency": live_latency, "dashboard": dashboard}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "figures", nargs="*", metavar="FIGURE", help=f"any of {', '.join(FIGURES)} (default: all)"
    )
    names = parser.parse_args().figures or list(FIGURES)
    if unknown := set(names) - set(FIGURES):
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {', '.join(FIGURES)}")
    for name in names:
        path = HERE / f"{name}.png"
        FIGURES[name](path)
        sys.stdout.write(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} kB)\n")


if __name__ == "__main__":
    main()
