# The production image: `tenzo api` (gunicorn), `tenzo relay`, `tenzo dispatcher`.
# Two stages: the builder installs the locked dependencies and Tenzo into a virtual
# environment; the final image holds that environment and a non-root user, no pip cache,
# no build tools.

FROM python:3.11-slim AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/tenzo
ENV PATH=/opt/tenzo/bin:$PATH

# The dependencies in a layer of their own, from the lock file alone (every file checked
# against its hash): a change to the sources does not install them again.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock

# Tenzo itself, built with the setuptools and wheel of the lock: nothing unpinned.
WORKDIR /src
COPY pyproject.toml ./
COPY domain ./domain
COPY contracts ./contracts
COPY services ./services
RUN pip install --no-deps --no-build-isolation .


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/tenzo/bin:$PATH \
    TENZO_HTTP_HOST=0.0.0.0 \
    TENZO_HTTP_PORT=8080

# The directory where dispatchers claim a CPU each (docker-compose.yml shares it between
# the replicas as a volume, which starts with this directory's owner).
RUN useradd --create-home --uid 10001 tenzo \
    && install -d -o tenzo -g tenzo /tmp/tenzo-dispatcher-cpus
COPY --from=builder /opt/tenzo /opt/tenzo

USER tenzo
WORKDIR /home/tenzo
EXPOSE 8080
CMD ["tenzo", "api"]
