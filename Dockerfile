# syntax=docker/dockerfile:1
#
# One image for every service; the command chooses the service:
#
#   docker build -t ticketing-suite .
#   docker run ticketing-suite                               # python -m gateway
#   docker run ticketing-suite python -m consumer_service    # or any other service
#
# The default target (runtime) holds the runtime install only (`pip install .`):
# the tools' extra ([tools]: plotting, histograms, Kafka administration) is not
# in it. `--target tools` adds it, for the jobs an operator runs with
# ticketing-admin (migrate, kafka-acls, ledger, dlq):
#
#   docker build --target tools -t ticketing-suite-tools .
#   docker run ticketing-suite-tools                         # ticketing-admin migrate
#
# Settings are TICKETING_* environment variables (deploy/env.example). No
# HEALTHCHECK: orchestrators probe each service's gRPC health service.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment in /opt/ticketing, copied whole below -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ticketing
WORKDIR /src
# The pinned dependencies first, in a layer of their own: a change to the code
# alone reuses it.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
 && /opt/ticketing/bin/pip install -r requirements.txt
# Then the code: the packages pyproject.toml lists (.dockerignore keeps the
# rest of the repository out).
COPY . .
RUN /opt/ticketing/bin/pip install --no-deps .

FROM build AS build-tools
RUN /opt/ticketing/bin/pip install '.[tools]'

# -- what both images share: the interpreter, a user, the environment ---------
FROM ${PYTHON_IMAGE} AS base
# A fixed numeric id, so that Kubernetes can check runAsNonRoot.
RUN groupadd --system --gid 10001 ticketing \
 && useradd --system --uid 10001 --gid ticketing --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ticketing
ENV PATH=/opt/ticketing/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TICKETING_HOST=0.0.0.0
WORKDIR /opt/ticketing
USER 10001:10001

# -- tools: ticketing-admin, for the migration job and the operators' tasks ---
FROM base AS tools
COPY --from=build-tools /opt/ticketing /opt/ticketing
CMD ["ticketing-admin", "migrate"]

# -- runtime: the services (the default target, so last) ---------------------
FROM base AS runtime
COPY --from=build /opt/ticketing /opt/ticketing
# gRPC ports, then metrics ports: gateway, reservation_service,
# consumer_service, notifier_service, payment_service (the settings' defaults).
EXPOSE 50061 50071 50081 50091 50101 9061 9071 9081 9091 9101
# python, not a shell, is PID 1: it handles SIGTERM itself (drain, then stop).
CMD ["python", "-m", "gateway"]
