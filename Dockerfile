# sigwarden: a sidecar reverse proxy that verifies webhook signatures (SPEC §8).
#   docker build -t sigwarden .
#   docker run --read-only --tmpfs /tmp -v ./secret:/var/run/secrets/sendcloud:ro sigwarden
# BASE_IMAGE must provide Python >= 3.12 with the venv module at the same path in both stages
# (the virtual environment links to the base image's interpreter).
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python3 -m venv /opt/sigwarden
COPY pyproject.toml README.md ./
COPY addon ./addon
# A regular (non-editable) install with the Redis client (dedupe_store: redis://); the final stage needs nothing from /src.
RUN /opt/sigwarden/bin/pip install --no-cache-dir ".[redis]" \
 && /opt/sigwarden/bin/sigwarden --version

FROM ${BASE_IMAGE}
COPY --from=build /opt/sigwarden /opt/sigwarden
# The image's default config; mount your own over /etc/sigwarden. No secret is baked in.
COPY config/container.yaml /etc/sigwarden/config.yaml
# HOME=/tmp: the user has no home directory and the root filesystem may be read-only;
# no bytecode writes at run time (pip compiled it at install time).
ENV PATH=/opt/sigwarden/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGWARDEN_CONFIG=/etc/sigwarden/config.yaml
# A numeric user without a passwd entry, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["sigwarden", "run"]
