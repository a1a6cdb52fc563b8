# syntax=docker/dockerfile:1
# One image for the server, the worker, migrations and the web demo's static server (see compose.yaml).

# --- Python runtime with the project installed -------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
# torch first and pinned, as the Makefile does: the rest of the dependencies resolve against it.
RUN pip install torch==2.13.0
COPY pyproject.toml ./
COPY server server
COPY generated/python generated/python
COPY clients/python clients/python
RUN pip install .

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
