# erpgo-chatops: the bot's HTTP server (Slack events, Alertmanager webhooks, /healthz, /metrics)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY runbooks ./runbooks
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# the charts' font: without one, a chart's text is drawn blank
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 erpgo
COPY --from=build /install /usr/local
USER erpgo
WORKDIR /home/erpgo
ENV PORT=3000 PYTHONUNBUFFERED=1
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/healthz', timeout=4)"
CMD ["erpgo-bot", "serve"]
