#!/usr/bin/env bash
# Makes this checkout runnable on a fresh machine: a virtualenv with the project and its dev
# extra in .venv, a Redis answering on 127.0.0.1:6379 and a RabbitMQ on 127.0.0.1:5672 (the
# end-to-end tests run once per broker). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "bootstrap: installing the project and its dev extra into .venv" >&2
    mkdir -p .run
    if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
           && .venv/bin/python -m pip install --quiet -e '.[dev]'; } > .run/pip.log 2>&1; then
        cat .run/pip.log >&2
        echo "bootstrap: pip install failed (log above, also in .run/pip.log)" >&2
        exit 1
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi

redis_up() {
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
    else
        .venv/bin/python -c "import redis,sys; sys.exit(0 if redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=1).ping() else 1)" 2>/dev/null
    fi
}

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {
    echo "bootstrap: installing $1 with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$1" >/dev/null
}

if ! redis_up; then
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    echo "bootstrap: starting redis-server on 127.0.0.1:6379" >&2
    mkdir -p .run
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$PWD/.run" --logfile "$PWD/.run/redis.log"
    for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
    redis_up || { echo "bootstrap: Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
fi

rabbitmq_up() {
    .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', 5672), 1).close()" \
        2>/dev/null
}

if ! rabbitmq_up; then
    PATH="$PATH:/usr/sbin"
    command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
    echo "bootstrap: starting rabbitmq-server on 127.0.0.1:5672" >&2
    # Loopback only: the default guest/guest user may log in from loopback alone anyway.
    $SUDO env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5672 \
        rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 1 120); do rabbitmq_up && break; sleep 0.5; done
    rabbitmq_up || { echo "bootstrap: RabbitMQ did not come up on 127.0.0.1:5672" >&2; exit 1; }
    $SUDO rabbitmqctl await_startup >/dev/null
fi
