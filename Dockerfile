# syntax=docker/dockerfile:1
#
# Container images of unigate: one stage per service, all built on `base`, which holds the
# installed `unigate` distribution. Build one with, e.g.:
#
#   docker build --target gateway -t unigate-gateway .
#
# docker-compose.yml builds every stage (see its `build.target`s). The last stage (gateway)
# is what a plain `docker build .` produces.

FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    LOG_LEVEL=INFO \
    OPS_HOST=0.0.0.0

WORKDIR /build

# The runtime dependencies first, read from pyproject.toml alone, so that editing the source
# does not reinstall them (this layer stays cached until pyproject.toml changes).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the project itself, installed non-editable (README.m[d]: copied when present).
COPY pyproject.toml README.m[d] ./
COPY libs ./libs
COPY apps ./apps
COPY services ./services
COPY simulators ./simulators
RUN pip install --no-cache-dir . \
 && cd / \
 && rm -rf /build

# Services run unprivileged; nothing writes to the image's file system.
RUN groupadd --system --gid 10001 unigate \
 && useradd --system --uid 10001 --gid unigate --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin unigate \
 && install -d -o unigate -g unigate -m 0750 /certs
# /certs: the internal mTLS files (TLS_DIR), from a volume or Secret; the directory belongs to
# the service user so that a new named volume mounted on it does too (`unigate certs` writes).
WORKDIR /app
USER unigate:unigate

# `unigate migrate` as a one-shot job: creates the database if missing, applies the schema
# migrations and creates the root user (INITIAL_ROOT_PASSWORD). Any other admin command runs
# through it too: `docker compose run --rm migrate token create ...`.
FROM base AS migrate
HEALTHCHECK NONE
ENTRYPOINT ["unigate"]
CMD ["migrate"]

FROM base AS auth
ENV AUTH_LISTEN=0.0.0.0:50051 \
    AUTH_OPS_PORT=9101
# gRPC, then the ops HTTP server (/healthz /readyz /metrics).
EXPOSE 50051 9101
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('AUTH_OPS_PORT', '9101'), timeout=2)"]
ENTRYPOINT ["unigate-auth"]

FROM base AS relay
ENV RELAY_LISTEN=0.0.0.0:50061 \
    RELAY_OPS_PORT=9102 \
    RELAY_PROVIDERS=openai
EXPOSE 50061 9102
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('RELAY_OPS_PORT', '9102'), timeout=2)"]
# The provider families served come from RELAY_PROVIDERS, or `--providers a,b` as command.
ENTRYPOINT ["unigate-relay"]

FROM base AS billing
ENV BILLING_LISTEN=0.0.0.0:50071 \
    BILLING_OPS_PORT=9103
EXPOSE 50071 9103
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('BILLING_OPS_PORT', '9103'), timeout=2)"]
ENTRYPOINT ["unigate-billing"]

# The gateway serves /healthz /readyz /metrics on its public port.
FROM base AS gateway
# The public port, and the ops port (/metrics, /healthz, /readyz) that clients never reach.
ENV HOST=0.0.0.0 \
    PORT=3000 \
    OPS_HOST=0.0.0.0 \
    GATEWAY_OPS_PORT=9100
EXPOSE 3000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_OPS_PORT', '9100'), timeout=2)"]
ENTRYPOINT ["unigate-gateway"]
