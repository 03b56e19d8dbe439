# erpgo-chatops: the bot's HTTP server (Slack events, Alertmanager webhook, /healthz, /livez, /metrics).
#
# BASE_IMAGE is any Debian bookworm image (its python3 is 3.11): debian:bookworm-slim from a registry,
# or one made where no registry is reachable with
#   debootstrap --variant=minbase bookworm rootfs && tar -C rootfs -c . | docker import - erpgo/debian-base
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# ca-certificates: Slack and any https target are verified against the system store;
# fonts-dejavu-core: the charts' text (without a font it is drawn blank)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/erpgo-chatops \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/erpgo erpgo

ENV PATH=/opt/erpgo-chatops/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# The dependencies alone first, read from pyproject.toml: a change to the code rebuilds only what follows
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > requirements.txt \
 && pip install -r requirements.txt

COPY README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY runbooks ./runbooks
RUN pip install --no-deps . && cd / && rm -rf /src

USER erpgo
WORKDIR /home/erpgo
ENV PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/healthz', timeout=4)"
CMD ["erpgo-bot", "serve"]
