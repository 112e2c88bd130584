#!/usr/bin/env bash
# Debian packages the tests and benchmarks use as peers and judges: skopeo, the
# docker-registry binary (for the local registry:2 image and plain-process registries),
# ShellCheck (ansible-test sanity skips its shellcheck test without it), the runtimes
# the registry_client role configures: containerd (with ctr; docker.io already depends on
# it, so the engine's own containerd is never replaced) and podman (without recommends:
# the test runs it as root with its own storage), the services the registry cluster
# test runs for real: redis-server (the shared blob descriptor cache) and haproxy (the
# load balancer the registry_lb role configures). The test starts its own redis-server
# and haproxy processes; the Debian packages' own services (when an init system starts
# them) are not used. And the Amazon ECR credential helper (the registry role installs it
# itself with registry_ecr_credential_helper; present beforehand, the test does not depend on
# the mirror being reachable mid-run). WITH_BROWSER=1 adds headless Chromium (make docs-test).
set -euo pipefail
missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v docker-credential-ecr-login >/dev/null 2>&1 || missing+=(amazon-ecr-credential-helper)
lean=()
command -v podman >/dev/null 2>&1 || lean+=(podman)
[ "${WITH_HYPERFINE:-0}" = 1 ] && { command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine); }
# make docs-test: Debian's headless Chromium (the browser without its desktop parts) loads the
# rendered documentation site.
if [ "${WITH_BROWSER:-0}" = 1 ] && ! command -v chromium-headless-shell >/dev/null 2>&1 \
    && ! command -v chromium >/dev/null 2>&1; then
  lean+=(chromium-headless-shell)
fi
if [ $((${#missing[@]} + ${#lean[@]})) -gt 0 ]; then
  printf '==> installing Debian packages: %s\n' "${missing[*]} ${lean[*]}" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing ${missing[*]} ${lean[*]} and this is not root; install them with apt-get and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ${#lean[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
  fi
fi
