#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672)
# answer, installing and starting them when needed (Debian; run as root), and that RabbitMQ has
# the tests' own vhost (RABBITMQ_TEST_VHOST), so a console on this machine never sees their tasks.
# Prints the PostgreSQL URL to use (progress goes to stderr).
set -euo pipefail

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

wait_for() {  # wait_for <seconds> <command...>
  local seconds=$1; shift
  for _ in $(seq "$((seconds * 5))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# --- PostgreSQL
command -v pg_isready >/dev/null || apt_install postgresql
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then apt_install postgresql; fi
  echo "==> starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start >&2 || true
  wait_for 30 pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
url="postgres://postgres@127.0.0.1:5432/ticket_console"
if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -Atc "select 1" >/dev/null 2>&1; then
  # Not trust auth (a fresh Debian install): give the postgres role a local test password.
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
  url="postgres://postgres:postgres@127.0.0.1:5432/ticket_console"
fi

# --- Redis
command -v redis-server >/dev/null || apt_install redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
  wait_for 15 redis-cli -h 127.0.0.1 -p 6379 ping || { echo "Redis did not start" >&2; exit 1; }
fi

# --- RabbitMQ
rabbitmq_answers() { (exec 3<>/dev/tcp/127.0.0.1/5672); }  # AMQP listens once the app is up
command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
if ! rabbitmq_answers >/dev/null 2>&1; then
  echo "==> starting RabbitMQ" >&2
  rabbitmq-server -detached >&2 || true
  wait_for 90 rabbitmq_answers || { echo "RabbitMQ did not start" >&2; exit 1; }
fi
vhost="${RABBITMQ_TEST_VHOST:-ticket_console_test}"
if ! rabbitmqctl -q list_vhosts name | grep -qxF "$vhost"; then
  rabbitmqctl -q add_vhost "$vhost" >&2
fi
rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*" >&2
echo "$url"
