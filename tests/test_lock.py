"""The lock files (requirements/*.txt) agree with pyproject.toml, and everything installs from them.

No network and no resolver here: each lock records the sha256 of the inputs it was compiled from
(pyproject.toml's dependency tables, requirements/build.in and pins.txt, the targets in requirements/locks.py),
and every requirement of its extras must be met by one of its pins. When these fail, run ``scripts/lock``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("m2s_locks", ROOT / "requirements" / "locks.py")
locks = importlib.util.module_from_spec(_spec)
sys.modules.setdefault(_spec.name, locks)
_spec.loader.exec_module(locks)

FIX = "pyproject.toml and the locks disagree: run scripts/lock (needs PyPI) and commit requirements/"


@pytest.mark.parametrize("target", locks.TARGETS, ids=lambda t: t.name)
def test_lock_matches_pyproject(target):
    """Compiled from today's dependency tables, for its target, every requirement met, every pin hashed."""
    assert locks.problems(target) == [], FIX


def test_every_lock_file_is_a_target():
    """No stale lock lies around that nothing installs or regenerates."""
    files = {p.stem for p in (ROOT / "requirements").glob("*.txt")} - {"pins"}
    assert files == set(locks.BY_NAME), FIX


def test_a_changed_pyproject_is_caught(monkeypatch):
    """The check fails on a new dependency, a raised bound and any other edit of the dependency tables."""
    real = locks.pyproject()
    changed = {**real, "project": {**real["project"]}}
    changed["project"]["dependencies"] = [
        *(d for d in real["project"]["dependencies"] if not d.startswith("numpy")),
        "numpy>=99",
        "left-pad-nonexistent>=1",
    ]
    monkeypatch.setattr(locks, "pyproject", lambda: changed)
    found = "\n".join(locks.problems(locks.BY_NAME["local"]))
    assert "other inputs" in found
    assert "does not satisfy 'numpy>=99'" in found
    assert "'left-pad-nonexistent>=1' is not locked" in found


def test_build_in_is_the_build_backend_and_pip():
    """build.in names pip and exactly pyproject.toml's [build-system] requires (the images and .venv build the
    project with --no-build-isolation from the locked ones)."""
    lines = (ROOT / "requirements" / "build.in").read_text(encoding="utf-8").splitlines()
    listed = sorted(line for line in lines if line and not line.startswith("#"))
    assert listed == sorted(["pip", *locks.pyproject()["build-system"]["requires"]])


def test_uv_is_pinned_to_the_version_that_writes_the_locks():
    assert f"uv=={locks.UV_VERSION}" in [
        Requirement(r).name + str(Requirement(r).specifier) for r in locks.pyproject()["project"]["optional-dependencies"]["dev"]
    ]  # fmt: skip


def test_local_torch_is_the_cpu_wheel_on_disk_and_images_take_pypis():
    """.venv's torch is the CPU wheel in /opt/wheels (its sha256 is the lock's only hash for torch); the
    trainer image's is PyPI's build of the same version."""
    _, local = locks.read_lock(locks.lock_path(locks.BY_NAME["local"]))
    version, hashes = local["torch"]
    assert version == "2.13.0+cpu" and len(hashes) == 1
    _, trainer = locks.read_lock(locks.lock_path(locks.BY_NAME["image-trainer"]))
    assert trainer["torch"][0] == "2.13.0" and hashes[0] not in trainer["torch"][1]
    wheel = locks.LOCAL_WHEELS / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    if not wheel.exists():
        pytest.skip(f"{wheel} is not on this machine")
    digest = hashlib.sha256()
    with wheel.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == hashes[0]


def test_the_demo_lock_is_the_tested_lock_less_the_extras():
    """local-service.txt (the demos) has the versions of local.txt (the tests), and every image the tested
    versions too, torch apart: what runs is what was tested."""
    _, local = locks.read_lock(locks.lock_path(locks.BY_NAME["local"]))
    for target in locks.TARGETS:
        _, pins = locks.read_lock(locks.lock_path(target))
        differ = {n: (v, local[n][0]) for n, (v, _) in pins.items() if n in local and local[n][0] != v}
        assert set(differ) <= {"torch"}, (target.name, differ)


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or sys.prefix == sys.base_prefix, reason="not a locked .venv"
)
def test_this_environment_is_the_lock():
    """The running .venv holds the locked versions; in CI (M2S_REQUIRE_LOCK=1, a fresh bootstrap) exactly
    the lock, nothing more."""
    stamp = Path(sys.prefix) / ".m2s-installed"
    if not stamp.exists():
        pytest.skip("this environment was not made by scripts/bootstrap")
    lock = stamp.read_text().split()[1]
    if lock not in locks.BY_NAME:
        pytest.skip(f"{lock!r}: unlocked (another Python) or made by an older scripts/bootstrap")
    _, pins = locks.read_lock(ROOT / "requirements" / f"{lock}.txt")
    # Only what is installed in the environment: once setuptools is imported (heartpy's pkg_resources), its
    # vendored packages' dist-info (platformdirs, packaging, wheel) are on sys.path too, at other versions.
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {locks.canonical(d.metadata["Name"]): d.version for d in metadata.distributions(path=site)}
    installed.pop("m2s-live", None)
    wrong = {n: (v, pins[n][0]) for n, v in installed.items() if n in pins and pins[n][0] != v}
    assert not wrong, f"installed vs locked {wrong}: run scripts/bootstrap"
    if os.environ.get("M2S_REQUIRE_LOCK") == "1":
        assert installed.keys() == pins.keys()


def test_bootstrap_and_ci_install_from_the_locks():
    """scripts/bootstrap installs a lock with hashes and the project without deps; CI refuses an unlocked
    environment."""
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text(encoding="utf-8")
    assert '--require-hashes -r "requirements/$lock.txt"' in bootstrap
    assert "--no-deps --no-build-isolation -e ." in bootstrap
    assert f'locked_python="{locks.BY_NAME["local"].python}"' in bootstrap
    assert "export M2S_REQUIRE_LOCK=1" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
