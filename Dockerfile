# syntax=docker/dockerfile:1
# One image for the server, the worker, migrations and the web demo's static server (see compose.yaml).

# --- Python runtime with the project installed -------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Exactly requirements/runtime.lock, hash-checked, installed the way `make deps` installs the dev lock; torch's
# CPU build comes from PyTorch's own page unless TORCH_FIND_LINKS names another (docs/dependencies.md).
ARG TORCH_FIND_LINKS=
COPY pyproject.toml ./
COPY requirements requirements
COPY scripts/lock.py scripts/lock.py
COPY server server
COPY generated/python generated/python
COPY clients/python clients/python
RUN python -m venv /opt/venv \
    && python scripts/lock.py sync /opt/venv/bin/python requirements/runtime.lock \
    && rm -rf /opt/venv/tools /root/.cache

# --- descriptors of the third-party protos the browser client decodes (from the installed packages) --
FROM runtime AS descriptors
COPY clients/web/descriptor_image.py /tmp/descriptor_image.py
RUN python /tmp/descriptor_image.py /tmp/deps.binpb

# --- the web demo bundle -----------------------------------------------------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY generated/ts generated/ts
COPY clients/web clients/web
COPY --from=descriptors /tmp/deps.binpb /tmp/deps.binpb
RUN DESCRIPTOR_IMAGE=/tmp/deps.binpb node clients/web/build.mjs

# --- final image -------------------------------------------------------------------------------------
FROM runtime
COPY --from=web /src/build/web /app/build/web
COPY clients/web/serve.py /app/clients/web/serve.py
RUN useradd --system --uid 10001 --home-dir /data tutorstream \
    && mkdir -p /data && chown tutorstream /data
USER tutorstream
ENV DATA_DIR=/data HOST=0.0.0.0
EXPOSE 50051 8081
CMD ["tutorstream-server", "serve"]
