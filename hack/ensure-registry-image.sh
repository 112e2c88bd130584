#!/usr/bin/env bash
# Make sure the image the role deploys (default registry:2) exists in the local engine.
# Docker Hub is unreachable on these machines, so when a pull fails we build an
# equivalent image from Debian's docker-registry package (same distribution
# software, 2.8.2) and say so.
set -euo pipefail
image=${1:-registry:2}
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if timeout 20 docker pull "$image" >/dev/null 2>&1; then
  echo "==> pulled $image" >&2
  exit 0
fi
echo "==> $image cannot be pulled here; building an equivalent image from Debian's docker-registry package" >&2
"$(dirname "$0")/ensure-packages.sh"
bin=$(command -v docker-registry)
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/bin" "$d/etc/docker/registry" "$d/var/lib/registry" "$d/tmp"
cp "$bin" "$d/bin/registry"
# Copy exactly the shared libraries the binary links against (plus the loader).
for lib in $(ldd "$bin" | awk '/=>/ {print $3; next} $1 ~ /^\// {print $1}'); do
  [ -f "$lib" ] || continue
  mkdir -p "$d$(dirname "$lib")"
  cp -L "$lib" "$d$lib"
done
cat > "$d/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
tar -C "$d" -c . | docker import \
  -c 'ENTRYPOINT ["/bin/registry"]' \
  -c 'CMD ["serve","/etc/docker/registry/config.yml"]' \
  -c 'EXPOSE 5000' -c 'VOLUME /var/lib/registry' \
  -m "registry:2 equivalent built from Debian docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo unknown)" \
  - "$image" >/dev/null
echo "==> built $image locally" >&2
