"""`m2s-serve` without ONNX Runtime: the runtime is an extra (`cpu` or `gpu`), so its absence is explained."""

import os

from service.cli import EXIT_STARTUP_FAILED, NO_ONNXRUNTIME, check_onnxruntime
from tests.no_torch import run_without

_SERVE = """
import sys
from service.cli import main
sys.exit(main(["--port", "0", "--log-level", "warning"]))
"""


def test_check_passes_with_onnxruntime_installed():
    """With the `cpu` extra installed (this environment) the check lets the service start."""
    assert check_onnxruntime() is None


def test_serve_without_onnxruntime_exits_3_with_the_install_command():
    """Without onnxruntime, m2s-serve exits 3 before serving and says which extra to install."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2S_")}
    done = run_without(_SERVE, blocked=("onnxruntime",), timeout=120, env=env)
    assert done.returncode == EXIT_STARTUP_FAILED, done.stderr
    assert done.stderr.startswith(f"m2s-serve: error: {NO_ONNXRUNTIME}")
    assert "pip install 'm2s-live[cpu]' (or 'm2s-live[gpu]' on a CUDA machine)" in done.stderr
    assert "Uvicorn running" not in done.stderr
