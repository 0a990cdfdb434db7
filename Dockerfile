# syntax=docker/dockerfile:1.7
# One image for the five LeadFlow services and the console. Pick one with LEADFLOW_SERVICE
# (capture|enrichment|scoring|routing|sla|console); the command is the subcommand (serve, migrate,
# seed-demo; the console also provision-keys and users create):
#   docker run -e LEADFLOW_SERVICE=scoring leadflow migrate
#   docker run -e LEADFLOW_SERVICE=console leadflow provision-keys

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Step 1: third-party dependencies only, from the lock alone. This layer changes only when
# uv.lock does, so code edits rebuild in seconds. --frozen because the members' pyproject
# files are not in the build context yet and must not be consulted.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-workspace

# Step 2: the workspace members themselves (libs, the five services and the console).
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev


FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG APP_UID=10001
# The workspace version (every pyproject.toml carries it; tests/release checks this label matches).
LABEL org.opencontainers.image.title="LeadFlow" \
      org.opencontainers.image.description="Lead capture, enrichment, scoring, routing and SLA services, and their web console" \
      org.opencontainers.image.version="0.2.0" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid ${APP_UID} leadflow \
 && useradd --system --uid ${APP_UID} --gid leadflow --home-dir /app --shell /usr/sbin/nologin leadflow
WORKDIR /app
# Service sources stay next to the venv: Alembic reads its scripts from the package directories.
COPY --from=build --chown=leadflow:leadflow /app /app
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/leadflow-entrypoint
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEADFLOW_SERVICE=capture
USER leadflow:leadflow
EXPOSE 8000 8001 8002 8003 8004 8005
ENTRYPOINT ["/usr/local/bin/leadflow-entrypoint"]
CMD ["serve"]
