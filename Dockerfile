# The production image: `tenzo api` (gunicorn), `tenzo relay`, `tenzo dispatcher`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml ./
COPY domain ./domain
COPY contracts ./contracts
COPY services ./services
RUN pip install . && useradd --create-home --uid 10001 tenzo

USER tenzo
EXPOSE 8080
CMD ["tenzo", "api"]
