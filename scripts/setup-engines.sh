#!/usr/bin/env bash
# Installs and starts the engines the test suite talks to: Docker Engine (+ single-node swarm),
# redis-server, rabbitmq-server, mariadb-server (MySQL), nginx (the ingress), socat, chromium.
# Debian + root only; idempotent; every wait has a deadline. The tests start their own private
# Redis/RabbitMQ/MySQL/nginx instances on free ports: this script only installs the binaries.
set -euo pipefail

log() { printf '[setup-engines] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  log "not root on Debian: installing nothing (tests that need a missing engine will skip and say why)"
  exit 0
fi

packages=(docker.io redis-server rabbitmq-server mariadb-server nginx socat chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -q >/dev/null
  timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's packages may start system-wide servers on their default ports where an init system
# runs; the tests never use those (they start private instances on free ports).

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start within 60 s; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
log "docker: $(docker version --format '{{.Server.Version}}')"

state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown)
if [ "$state" != "active" ]; then
  log "initialising single-node swarm"
  timeout 60 docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
log "engines ready"
