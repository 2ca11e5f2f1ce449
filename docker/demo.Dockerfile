# The features-only demo in a container: the synthetic generator streamed through the live feature
# extractors (CPU only, no dataset). The GPU service and trainer images come with the deployment work.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 m2s
WORKDIR /opt/m2s-live
COPY pyproject.toml README.md ./
COPY signals/ signals/
COPY models/ models/
COPY training/ training/
COPY service/ service/
COPY clients/ clients/
RUN pip install --no-cache-dir .

USER m2s
ENTRYPOINT ["m2s-features-demo"]
CMD ["--duration", "0"]
