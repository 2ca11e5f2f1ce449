# The M2S-live service on an NVIDIA GPU: `m2s-serve` with ONNX Runtime's CUDA execution provider, the
# default demo bundle inside, no torch. Build from the repository root (docker-compose.yml does):
#   docker build -f docker/service.Dockerfile -t m2s-live/service:gpu .
# The base is CUDA 13.0 + cuDNN 9 because onnxruntime-gpu 1.31.1 from PyPI is built for exactly that
# (its onnxruntime/capi/build_and_package_info.py says cuda_version = '13.0'; it links libcublas.so.13,
# libcudart.so.13 and loads cuDNN 9). The host needs an NVIDIA driver >= 580 and the NVIDIA Container
# Toolkit; without a usable GPU ONNX Runtime falls back to the CPU and /v2/health/ready says so.
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# Ubuntu 24.04's Python 3.12 (onnxruntime-gpu 1.31 needs >= 3.11), used through a venv (PEP 668).
# Not version-pinned: these packages follow the pinned base image, and pinning Ubuntu package versions
# breaks the build as soon as the archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin m2s

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The dependencies first, exactly as locked: requirements/image-service-gpu.txt pins every package with its
# sha256 (made by scripts/lock for Python 3.12 on Linux x86_64): the CUDA build of ONNX Runtime 1.31.1 (extra
# `gpu`; never next to the CPU one), pinned to the base's CUDA, and no torch. A layer of its own, so that a
# source change does not reinstall them.
COPY requirements/image-service-gpu.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Only what `pip install .` needs; the models/ package carries the default demo bundle as package data.
WORKDIR /tmp/m2s-live
COPY pyproject.toml README.md ./
COPY signals/ signals/
COPY synthetic/ synthetic/
COPY models/ models/
COPY training/ training/
COPY service/ service/
COPY clients/ clients/
COPY cli/ cli/
# The project itself, built from the locked setuptools and wheel (--no-build-isolation): its dependencies
# are all in the lock already (--no-deps).
RUN pip install --no-cache-dir --no-deps --no-build-isolation /tmp/m2s-live \
    && rm -rf /tmp/m2s-live

# The mount point of the writable volume for calibrated models (docker-compose.yml), owned by the service's user.
# The same for session recordings (health data: the folder is the service user's only).
RUN mkdir -p /calibrated /recordings && chown 10001:10001 /calibrated /recordings \
    && chmod 700 /calibrated /recordings

WORKDIR /home/m2s
USER 10001:10001

# Settings are M2S_* variables (`m2s-serve --help`); docker-compose.yml sets the rest.
ENV M2S_HOST=0.0.0.0 \
    M2S_PORT=8000 \
    M2S_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider
EXPOSE 8000
# Ready = default model loaded and warmed up; the GPU warm-up can take a while, hence the start period.
HEALTHCHECK --interval=15s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["m2s-serve"]
