#!/usr/bin/env bash
# Make sure RabbitMQ and PostgreSQL answer before the project runs or tests.
#
# Reads AMQP_URL and DATABASE_URL (SPEC §1 defaults). A service whose port answers is left alone.
# When a *local* one does not answer, the first that applies is used:
#   (a) the server is installed: start it;
#   (b) we are root and have apt-get: install it from Debian's packages, then start it;
#   (c) a Docker engine answers: `docker compose -f docker/compose.yaml up`;
#   (d) otherwise: exit 1 saying what is missing.
# A remote host is only probed (one TCP connect, 1 s timeout); nothing is installed for it.
# Quick and idempotent when both already run. ENSURE_SERVICES_TIMEOUT (default 60) bounds each
# wait for a started server.
set -euo pipefail

# Debian installs the servers' tools in sbin, which a non-root PATH often lacks.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@localhost:5672/}"
DATABASE_URL="${DATABASE_URL:-postgresql://postgres@localhost:5432/commerce}"
WAIT_SECONDS="${ENSURE_SERVICES_TIMEOUT:-60}"
MANAGEMENT_PORT=15672
APT_UPDATED=0

log() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Print "amqp_host amqp_port db_host db_port" (endpoints only, never credentials).
# One python3 call for both URLs keeps the all-running path quick.
url_endpoints() {
    python3 - "$AMQP_URL" "$DATABASE_URL" <<'PY'
import sys
from urllib.parse import urlsplit

def endpoint(url: str, name: str, default_port: int) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        sys.exit(f"error: {name} has an invalid port")
    if parts.scheme == "amqps":
        default_port = 5671
    return f"{parts.hostname or 'localhost'} {port or default_port}"

print(endpoint(sys.argv[1], "AMQP_URL", 5672), endpoint(sys.argv[2], "DATABASE_URL", 5432))
PY
}

# One TCP connect attempt with a timeout; never more traffic than that.
port_open() { # host port [timeout_seconds]
    # shellcheck disable=SC2016 # $1/$2 are expanded by the inner bash
    timeout "${3:-1}" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

wait_port() { # host port seconds
    local deadline=$((SECONDS + $3))
    until port_open "$1" "$2"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# host:port for messages, with IPv6 literals in brackets.
hostport() { if [[ "$1" == *:* ]]; then printf '[%s]:%s' "$1" "$2"; else printf '%s:%s' "$1" "$2"; fi; }

is_local() {
    case "$1" in
        localhost | 127.0.0.1 | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

# ---- installation and start, per service -------------------------------------------------

rabbitmq_installed() { command -v rabbitmq-server >/dev/null 2>&1; }

# Newest installed major version, e.g. "15" (Debian keeps one folder per cluster version).
postgres_version() {
    find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
}

postgres_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 && [[ -n "$(postgres_version)" ]]
}

apt_install() { # package
    local out
    out="$(mktemp)"
    if ((APT_UPDATED == 0)); then
        apt-get update >"$out" 2>&1 || { tail -n 20 "$out" >&2; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >"$out" 2>&1 \
        || { tail -n 20 "$out" >&2; die "apt-get install $1 failed"; }
    rm -f "$out"
}

start_rabbitmq() {
    rabbitmq-server -detached || die "rabbitmq: 'rabbitmq-server -detached' failed"
}

start_postgres() {
    local version
    version="$(postgres_version)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || die "postgres: 'pg_ctlcluster $version main start' failed"
}

# The SPEC's default DATABASE_URL has no password: trust local TCP connections.
postgres_trust_local_tcp() {
    local hba
    hba="/etc/postgresql/$(postgres_version)/main/pg_hba.conf"
    [[ -f "$hba" ]] || die "postgres: $hba not found after install"
    sed -E -i \
        's#^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]]+#\1trust#' \
        "$hba"
}

install_rabbitmq() {
    apt_install rabbitmq-server
    # The package may already have started it.
    port_open "$1" "$2" || start_rabbitmq
}

install_postgres() {
    apt_install postgresql
    postgres_trust_local_tcp
    if port_open "$1" "$2"; then
        pg_ctlcluster --skip-systemctl-redirect "$(postgres_version)" main reload
    else
        start_postgres
    fi
}

docker_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

compose_up() { # compose service name
    docker compose version >/dev/null 2>&1 \
        || die "a Docker engine answers but the 'docker compose' plugin is missing"
    docker compose -f "$REPO_ROOT/docker/compose.yaml" up -d --wait "$1" >/dev/null \
        || die "$1: 'docker compose -f docker/compose.yaml up -d $1' failed"
}

# ---- the check -----------------------------------------------------------------------------

ensure() { # service variable_name package host port
    local service="$1" variable="$2" package="$3" host="$4" port="$5" how where
    where="$(hostport "$host" "$port")"

    if port_open "$host" "$port"; then
        log "$service: reachable at $where"
        after_ensure "$service" "$host"
        return 0
    fi
    if ! is_local "$host"; then
        die "$service: $where (from $variable) is not reachable and is not a local host," \
            "so nothing was started; start $service there or set $variable to a running server"
    fi

    if "${service}_installed"; then
        "start_$service"
        how="started"
    elif is_root && command -v apt-get >/dev/null 2>&1; then
        log "$service: not installed, installing Debian package $package ..."
        "install_$service" "$host" "$port"
        how="installed and started"
    elif docker_engine; then
        compose_up "$service"
        how="started with docker compose"
    else
        local why="not root"
        is_root && why="no apt-get"
        die "$service: nothing answers at $where, $service is not installed, it cannot be" \
            "installed here ($why) and no Docker engine answers ('docker info' failed)." \
            "Install it (as root: apt-get install $package), start a Docker engine and rerun" \
            "(docker/compose.yaml), or set $variable to a running server."
    fi

    wait_port "$host" "$port" "$WAIT_SECONDS" \
        || die "$service: $how, but $where did not answer within ${WAIT_SECONDS}s"
    if [[ "$service" == rabbitmq && "$how" != *docker* ]] && command -v rabbitmqctl >/dev/null 2>&1; then
        # The port opens before the broker accepts AMQP connections.
        timeout "$WAIT_SECONDS" rabbitmqctl -q await_startup >/dev/null \
            || die "rabbitmq: $how, but 'rabbitmqctl await_startup' did not succeed"
    fi
    log "$service: $how, reachable at $where"
    after_ensure "$service" "$host"
}

after_ensure() { # service host
    if [[ "$1" == rabbitmq ]]; then ensure_management_ui "$2"; fi
}

ensure_management_ui() { # host
    is_local "$1" || return 0
    port_open "$1" "$MANAGEMENT_PORT" && return 0
    command -v rabbitmq-plugins >/dev/null 2>&1 || return 0
    if ! is_root; then
        log "rabbitmq: management UI not enabled (as root: rabbitmq-plugins enable rabbitmq_management)"
        return 0
    fi
    if timeout "$WAIT_SECONDS" rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1; then
        log "rabbitmq: management plugin enabled, UI at http://localhost:$MANAGEMENT_PORT"
    else
        warn "rabbitmq: could not enable the management plugin (rabbitmq-plugins enable rabbitmq_management)"
    fi
}

main() {
    local endpoints amqp_host amqp_port db_host db_port
    endpoints="$(url_endpoints)"
    read -r amqp_host amqp_port db_host db_port <<<"$endpoints"
    ensure rabbitmq AMQP_URL rabbitmq-server "$amqp_host" "$amqp_port"
    ensure postgres DATABASE_URL postgresql "$db_host" "$db_port"
}

main "$@"
