FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY schedules ./schedules
COPY worker ./worker
# The product wheel carries the booking client's package too (pyproject.toml finds it there).
COPY clients/python ./clients/python
# The user owns its home: gunicorn puts its control socket in $HOME/.gunicorn (with /app, owned by
# root, it failed at start with "Permission denied").
RUN pip install . && useradd --system --uid 10001 --create-home --home-dir /home/anyrtc anyrtc

USER anyrtc
ENV HOME=/home/anyrtc
EXPOSE 8000 5555 8900
# Every service of docker-compose.yml overrides this with its Procfile line.
CMD ["sh", "-c", "celery -A worker worker --pool=threads --concurrency=32 --queues=lifecycle,query,events"]
