"""The live feature demo (the README's main job until the service lands)."""

import io
import subprocess
import sys

import pytest

from clients.features_demo import main, run
from synthetic import SyntheticConfig


def test_demo_streams_one_line_per_second_with_all_modalities():
    """12 s of stream give 12 feature lines; eye and heart rate appear once their 10-s windows are full."""
    out = io.StringIO()
    counts = run(
        SyntheticConfig(trial_duration_s=8),
        subject=1,
        duration_s=12,
        speed=0,
        chunk_s=0.25,
        modalities=("eeg", "eye", "ecg", "pps"),
        out=out,
    )
    lines = [line for line in out.getvalue().splitlines() if " s  truth " in line]
    assert len(lines) == 12
    assert counts == {"eeg": 12, "eye": 3, "ecg": 9, "ecg_hr": 3, "pps": 9}
    assert "pupil    … mm" in lines[8] and "pupil    … mm" not in lines[9]
    assert "HR     … bpm" not in lines[11]
    truths = {line.split("truth ")[1].split()[0] for line in lines}
    assert truths <= {"negative", "neutral", "positive"} and len(truths) >= 2  # crosses a trial boundary


def test_demo_command_runs_as_a_process():
    """`python -m clients.features_demo` runs to completion and reports the vectors it computed."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.features_demo",
            "--duration",
            "3",
            "--speed",
            "0",
            "--modalities",
            "eeg",
            "pps",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "done: eeg 3 vectors, pps 0 vectors" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--subject", "99"], "--subject must be in [0, 14]"),
        (["--speed", "-1"], "--speed must be a finite number >= 0"),
        (["--chunk", "0"], "--chunk must be in (0, 10]"),
        (["--config", "/nonexistent.json"], "does not exist"),
        (["--modalities", "fmri"], "invalid choice: 'fmri'"),
    ],
)
def test_demo_rejects_bad_arguments(argv, match, capsys):
    """Bad options exit with status 2 and a message saying what to change."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err
