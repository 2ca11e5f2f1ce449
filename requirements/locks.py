#!/usr/bin/env python3
"""The lock files in this folder: one per environment the project installs, what each is for, how they
are made and how they are checked.

- ``scripts/lock`` (``main`` here) regenerates them with ``uv pip compile`` (the dev extra pins uv; needs PyPI).
- ``scripts/bootstrap`` and the Dockerfiles install from them with ``pip install --require-hashes``, then the
  project itself with ``--no-deps``.
- ``tests/test_lock.py`` (``problems`` here) fails when a lock no longer matches pyproject.toml; no network.

Standard library only (plus ``packaging`` for the checks), Python >= 3.11 (tomllib).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UV_VERSION = "0.13.9"  # the dev extra's pin: the same uv writes the same lock
# Where this kind of machine keeps torch's CPU wheel (pip's find-links here). uv does not read pip's
# configuration, so the local locks name it explicitly; PyPI's torch 2.13.0 for Linux is the CUDA build.
LOCAL_WHEELS = Path("/opt/wheels")
REGENERATE = "scripts/lock"


@dataclass(frozen=True)
class Target:
    name: str
    python: str  # the minor version the lock is for; pip on another one may pick other wheels or none
    platform: str  # uv's --python-platform: the oldest glibc whose wheels the target can run
    extras: tuple[str, ...]
    purpose: str
    local_wheels: bool = False  # resolve torch from LOCAL_WHEELS (the CPU build)
    like_local: bool = True  # constrained to the versions of the `local` lock (torch apart)


TARGETS = (
    Target("local", "3.11", "x86_64-manylinux_2_36", ("cpu", "dev", "docs", "recordings", "train"),
           ".venv for tests and development: scripts/bootstrap with any extra, scripts/test, .ci/run "
           "(this machine kind: Debian 12, Python 3.11, torch's CPU wheel from /opt/wheels)",
           local_wheels=True, like_local=False),
    Target("local-service", "3.11", "x86_64-manylinux_2_36", ("cpu",),
           ".venv for the demos (scripts/bootstrap with no extra): the service without torch",
           local_wheels=True),
    Target("image-service-gpu", "3.12", "x86_64-manylinux_2_39", ("gpu",),
           "docker/service.Dockerfile (Ubuntu 24.04, glibc 2.39, Python 3.12)"),
    Target("image-service-cpu", "3.12", "x86_64-manylinux_2_40", ("cpu",),
           "docker/service-cpu.Dockerfile (python:3.12-slim-trixie, glibc 2.41; uv knows up to 2.40)"),
    Target("image-trainer", "3.12", "x86_64-manylinux_2_40", ("cpu", "train"),
           "docker/trainer.Dockerfile (python:3.12-slim-trixie; torch 2.13.0 from PyPI: the CUDA build)"),
)  # fmt: skip
BY_NAME = {t.name: t for t in TARGETS}


def lock_path(target: Target) -> Path:
    return HERE / f"{target.name}.txt"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def input_hash() -> str:
    """sha256 of everything a lock is compiled from: pyproject.toml's dependency tables (not its other
    settings), build.in, pins.txt, the targets above and the uv version."""
    data = pyproject()
    project = data["project"]
    payload = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system.requires": data["build-system"]["requires"],
        "build.in": (HERE / "build.in").read_text(encoding="utf-8"),
        "pins.txt": (HERE / "pins.txt").read_text(encoding="utf-8"),
        "targets": [asdict(t) for t in TARGETS],
        "uv": UV_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, list[str]]]]:
    """(header fields, {canonical name: (version, [sha256 hashes])}) of a lock file."""
    header: dict[str, str] = {}
    pins: dict[str, tuple[str, list[str]]] = {}
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if m := re.match(r"# m2s-lock (\w[\w-]*): (.*)$", line):
            header[m[1]] = m[2].strip()
    for entry in re.sub(r"\\\n\s*", " ", text).splitlines():
        if m := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(.*)$", entry):
            pins[canonical(m[1])] = (m[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", m[3]))
    return header, pins


def _header(target: Target, digest: str) -> str:
    return (
        f"# m2s-lock target: {target.name}: {target.purpose}\n"
        f"# m2s-lock python: {target.python}\n"
        f"# m2s-lock platform: {target.platform}\n"
        f"# m2s-lock extras: {','.join(target.extras)}\n"
        f"# m2s-lock inputs: {digest}\n"
        f"# Made by {REGENERATE} from pyproject.toml, requirements/build.in and requirements/pins.txt; do not edit.\n"
        f"# Install: pip install --require-hashes -r requirements/{target.name}.txt, "
        "then the project with --no-deps.\n"
    )


def problems(target: Target) -> list[str]:
    """Why the target's lock does not match pyproject.toml now (empty: it does). No network."""
    from packaging.requirements import Requirement

    path = lock_path(target)
    if not path.exists():
        return [f"{path.name} is missing"]
    header, pins = read_lock(path)
    out = []
    if header.get("inputs") != input_hash():
        out.append(f"{path.name} was compiled from other inputs than pyproject.toml's dependency tables, "
                   "build.in, pins.txt and the targets now")  # fmt: skip
    for key, want in (("python", target.python), ("platform", target.platform),
                      ("extras", ",".join(target.extras))):  # fmt: skip
        if header.get(key) != want:
            out.append(f"{path.name}: header {key} {header.get(key)!r}, target says {want!r}")
    env = {"python_version": target.python, "python_full_version": target.python + ".0",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
           "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
    data = pyproject()
    wanted = list(data["project"]["dependencies"])
    for extra in target.extras:
        wanted += data["project"]["optional-dependencies"][extra]
    wanted += [
        line for line in (HERE / "build.in").read_text().splitlines() if line and not line.startswith("#")
    ]
    wanted += [
        line for line in (HERE / "pins.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonical(req.name)
        if name not in pins:
            if text in data["project"]["dependencies"] or any(
                text in data["project"]["optional-dependencies"][e] for e in target.extras
            ):
                out.append(f"{path.name}: {text!r} is not locked")
            continue  # pins.txt may name a package this target does not install
        version, hashes = pins[name]
        if not req.specifier.contains(version, prereleases=True):
            out.append(f"{path.name}: {name}=={version} does not satisfy {text!r}")
    for name, (version, hashes) in pins.items():
        if not hashes:
            out.append(f"{path.name}: {name}=={version} has no hash")
    runtimes = {"onnxruntime", "onnxruntime-gpu"} & pins.keys()
    if len(runtimes) != 1:
        out.append(f"{path.name}: exactly one ONNX Runtime build expected, found {sorted(runtimes)}")
    return out


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        sys.exit(f"error: no uv beside {sys.executable}; run scripts/bootstrap dev (the dev extra pins uv)")
    version = subprocess.run(
        [str(uv), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    if version != UV_VERSION:
        sys.exit(
            f"error: {uv} is uv {version}, the locks are made with {UV_VERSION}; run scripts/bootstrap dev"
        )
    return str(uv)


def compile_all(uv_args: list[str]) -> None:
    """Regenerate every lock (uv keeps the versions an existing lock has unless uv_args say --upgrade)."""
    uv = _uv()
    if not LOCAL_WHEELS.is_dir():
        sys.exit(f"error: {LOCAL_WHEELS} (torch's CPU wheel for the local locks) is not on this machine")
    digest = input_hash()
    for target in TARGETS:
        out = lock_path(target)
        cmd = [uv, "pip", "compile", "--quiet", "--no-config", "pyproject.toml", "requirements/build.in",
               *(f"--extra={e}" for e in target.extras), "--constraint=requirements/pins.txt",
               f"--python-version={target.python}", f"--python-platform={target.platform}",
               "--generate-hashes", f"--custom-compile-command={REGENERATE}",
               f"--output-file={out.relative_to(ROOT)}"]  # fmt: skip
        if target.local_wheels:
            cmd.append(f"--find-links={LOCAL_WHEELS}")
        like = ""
        if target.like_local:
            # The same versions as the tested environment, torch apart (the images take PyPI's build);
            # on stdin, so that no temporary path lands in the lock's annotations.
            _, pins = read_lock(lock_path(BY_NAME["local"]))
            like = "".join(f"{n}=={v}\n" for n, (v, _) in pins.items() if n != "torch")
            cmd.append("--constraint=-")
        sys.stderr.write(f"lock: {out.relative_to(ROOT)}\n")
        subprocess.run(cmd + uv_args, cwd=ROOT, check=True, input=like, text=True)
        out.write_text(_header(target, digest) + out.read_text(encoding="utf-8"), encoding="utf-8")
    bad = [p for t in TARGETS for p in problems(t)]
    if bad:
        sys.exit("error: the new locks do not satisfy pyproject.toml:\n  " + "\n  ".join(bad))


def extraneous(path: Path) -> list[str]:
    """Distributions installed in this interpreter's environment that the lock does not list."""
    from importlib import metadata

    _, pins = read_lock(path)
    names = {canonical(d.metadata["Name"]) for d in metadata.distributions()}
    return sorted(names - pins.keys() - {"m2s-live"})


def main(argv: list[str]) -> None:
    if argv[:1] == ["extraneous"]:
        sys.stdout.write(" ".join(extraneous(Path(argv[1]))) + "\n")
    elif argv[:1] == ["check"]:
        bad = [p for t in TARGETS for p in problems(t)]
        if bad:
            sys.exit("\n".join(bad) + f"\nrun {REGENERATE}")
    else:
        compile_all(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
