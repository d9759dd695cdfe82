# syntax=docker/dockerfile:1
# Emploi+ backend image: one image, every process type (see Procfile / render.yaml):
#   docker run … IMAGE                                            # web (the default)
#   docker run … IMAGE python -m emploiplus.processes worker notifications
#   docker run … IMAGE python -m emploiplus.processes cron
#   docker run … IMAGE python -m emploiplus.processes release     # migrations, before a deploy

# --- build: wheels of every requirement, compiled once ------------------------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install --no-compile -r requirements.txt

# --- runtime: the virtualenv, the code, collected static files; no compiler, no root -------------
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=emploiplus.settings \
    PORT=8000
RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=app:app . .
# collectstatic imports the settings: placeholder values, used for this step only.
RUN DEBUG=0 SECRET_KEY=collectstatic-only DATABASE_URL=postgres://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 DB_POOL_MAX_SIZE=0 \
    python manage.py collectstatic --noinput \
    && chown -R app:app /app/.data
USER app
EXPOSE 8000
CMD ["python", "-m", "emploiplus.processes", "web"]
