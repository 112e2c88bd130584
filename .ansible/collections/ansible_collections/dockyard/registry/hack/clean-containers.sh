#!/usr/bin/env bash
# Remove the containers our tests and benchmarks start. They carry the label
# dockyard.test=1; containers left by an earlier run come back with their restart
# policy when dockerd starts, and would hold the ports the next run needs.
set -euo pipefail
docker info >/dev/null 2>&1 || exit 0
mapfile -t ids < <(docker ps -aq --filter label=dockyard.test=1)
if [ ${#ids[@]} -gt 0 ]; then
  docker rm -f -v "${ids[@]}" >/dev/null
fi
