# The M2S-live service without a GPU (the CPU fallback, and the image the demo's LSL simulator runs
# in): `m2s-serve` with ONNX Runtime's CPU build, the default demo bundle inside, no torch.
# Build from the repository root (docker-compose.yml does):
#   docker build -f docker/service-cpu.Dockerfile -t m2s-live/service:cpu .
FROM python:3.12-slim-trixie

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin m2s

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The dependencies first, exactly as locked: requirements/image-service-cpu.txt pins every package with its
# sha256 (made by scripts/lock for Python 3.12 on Linux x86_64): the CPU build of ONNX Runtime (extra `cpu`),
# the same version as the GPU image's, and no torch. A layer of its own, so that a source change does not
# reinstall them.
COPY requirements/image-service-cpu.txt /tmp/requirements.txt
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
    M2S_PROVIDERS=CPUExecutionProvider
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["m2s-serve"]
