# The M2S-live trainer: `m2s-train` with torch on an NVIDIA GPU. Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t m2s-live/trainer:cuda .
# torch==2.13.0 (the `train` extra's pin) from PyPI is, on Linux x86_64, the CUDA 13.0 build: its
# wheel depends on the CUDA 13.0.3 and cuDNN 9 libraries as pip packages, so no CUDA base image is
# needed, only an NVIDIA driver >= 580 and the NVIDIA Container Toolkit on the host. ONNX Runtime's
# CPU build (extra `cpu`) checks the exported graphs against torch.
FROM python:3.12-slim-trixie

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin m2s

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The dependencies first, exactly as locked: requirements/image-trainer.txt pins every package with its
# sha256 (made by scripts/lock for Python 3.12 on Linux x86_64: torch 2.13.0 from PyPI with its nvidia-*
# CUDA libraries, the CPU build of ONNX Runtime 1.31.1). A layer of its own, so that a source change does
# not reinstall them.
COPY requirements/image-trainer.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

WORKDIR /tmp/m2s-live
COPY pyproject.toml README.md ./
COPY signals/ signals/
COPY synthetic/ synthetic/
COPY models/ models/
COPY training/ training/
COPY service/ service/
COPY clients/ clients/
COPY cli/ cli/
COPY docker/train-bundle.sh /usr/local/bin/m2s-train-bundle
# The project itself, built from the locked setuptools and wheel; its dependencies are all in the lock.
RUN pip install --no-cache-dir --no-deps --no-build-isolation /tmp/m2s-live \
    && rm -rf /tmp/m2s-live \
    && chmod 0755 /usr/local/bin/m2s-train-bundle \
    && mkdir -p /data /models /runs /calibrated /recordings \
    && chown m2s:m2s /models /runs /calibrated /recordings \
    && chmod 700 /calibrated /recordings

WORKDIR /runs
USER 10001:10001

# Non-headless matplotlib backends and per-user caches are of no use here; a caller-chosen UID
# (compose's `user:`, to write into the host's folders) may have no writable home.
ENV MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    M2S_MODEL_REPOSITORY=/models \
    M2S_CALIBRATED_REPOSITORY=/calibrated \
    M2S_RECORDINGS_DIR=/recordings \
    M2S_RUNS=/runs
# `m2s-train-bundle DATA NAME [PRETRAIN OPTIONS]` trains and exports a bundle in one go
# (docker-compose.yml's trainer); any m2s-train command runs as the image's arguments.
ENTRYPOINT ["m2s-train"]
CMD ["--help"]
