# nbops prediction service: `nbops serve` in a slim image, as an unprivileged user.
#
# Build from the project folder (the image carries the code and its dependencies, not
# the models: those come from the registry at start, with their recorded hash checked):
#   docker build -t nbops-serve .
# Team scale: the registry is an MLflow server, the prediction log PostgreSQL.
#   docker run -p 8000:8000 \
#     -e MLFLOW_TRACKING_URI=http://mlflow:5000 -e NBOPS_MODEL=churn \
#     -e NBOPS_PREDICTION_LOG=postgresql://nbops:...@db/nbops \
#     -e NBOPS_API_TOKEN=... nbops-serve
# One machine: mount the project (its embedded registry is .nbops/, the model name its
# env.yaml's release.model_name), log to a volume.
#   docker run -p 8000:8000 -v "$PWD:/app" -v nbops-log:/var/lib/nbops nbops-serve
# Settings are the NBOPS_* variables of `nbops serve --help` (model, alias, canary, ...).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/nbops \
    && /opt/nbops/bin/pip install . \
    && /opt/nbops/bin/python -m nbops.build.offline

FROM python:3.11-slim
ENV PATH=/opt/nbops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PLOOMBER_STATS_ENABLED=false \
    NBOPS_PREDICTION_LOG=sqlite:////var/lib/nbops/predictions.db
COPY --from=build /opt/nbops /opt/nbops
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin nbops \
    && mkdir -p /app /var/lib/nbops \
    && chown nbops:nbops /app /var/lib/nbops
WORKDIR /app
USER 10001
EXPOSE 8000
VOLUME ["/var/lib/nbops"]
# Healthy = the model is loaded and the service answers (GET /ready); no curl in slim.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"]
# SIGTERM (docker stop) shuts down gracefully and flushes the prediction log.
STOPSIGNAL SIGTERM
CMD ["nbops", "serve", "--host", "0.0.0.0", "--port", "8000"]
