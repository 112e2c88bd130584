#!/usr/bin/env bash
# Make sure a Docker engine answers. This machine kind ships only the docker CLI:
# install Debian's engine when dockerd is missing and start it without systemd.
set -euo pipefail
log() { printf '==> %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  log "no Docker engine found: installing Debian's docker.io (needs root and the Debian mirror)"
  if [ "$(id -u)" != 0 ]; then
    echo "error: dockerd is not installed and this is not root; install docker.io and start it, then re-run" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
log "starting dockerd (log: /var/log/dockerd.log)"
# setsid: the engine must outlive the make process that started it.
setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker engine is up"
    exit 0
  fi
  sleep 1
done
echo "error: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
