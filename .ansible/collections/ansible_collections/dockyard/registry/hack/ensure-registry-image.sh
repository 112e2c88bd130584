#!/usr/bin/env bash
# Make sure the image the role deploys (default registry:2) exists in the local engine.
# Docker Hub is unreachable on these machines, so when a pull fails we build an
# equivalent image from Debian's docker-registry package (same distribution
# software, 2.8.2) and say so. The image carries the system CA bundle
# (/etc/ssl/certs/ca-certificates.crt, where Go looks first), or the registry could not
# verify HTTPS to S3 or to a pull-through cache's upstream; an image built here before it
# did is detected and built again.
set -euo pipefail
image=${1:-registry:2}
bundle=/etc/ssl/certs/ca-certificates.crt
local_build_marker="registry:2 equivalent built from Debian docker-registry"

# Whether the image has the CA bundle: copy the file out of a created (never started) container.
image_has_ca_bundle() {
  local cid rc=0
  cid=$(docker create "$image") || return 1
  docker cp "$cid:$bundle" - >/dev/null 2>&1 || rc=1
  docker rm "$cid" >/dev/null 2>&1 || true
  return $rc
}

if docker image inspect "$image" >/dev/null 2>&1; then
  if image_has_ca_bundle; then
    exit 0
  fi
  comment=$(docker image inspect -f '{{.Comment}}' "$image")
  if [ "${comment#"$local_build_marker"}" = "$comment" ]; then
    echo "==> warning: $image has no $bundle: HTTPS to S3 or an upstream registry cannot be verified from it" >&2
    exit 0
  fi
  echo "==> $image was built here without the CA bundle; building it again (containers that run it keep the old image until recreated)" >&2
else
  if timeout 20 docker pull "$image" >/dev/null 2>&1; then
    echo "==> pulled $image" >&2
    exit 0
  fi
  echo "==> $image cannot be pulled here; building an equivalent image from Debian's docker-registry package" >&2
fi
if timeout 20 docker pull "$image" >/dev/null 2>&1; then
  echo "==> pulled $image" >&2
  exit 0
fi
"$(dirname "$0")/ensure-packages.sh"
if [ ! -s "$bundle" ]; then
  echo "error: $bundle is missing: install Debian's ca-certificates package (apt-get install ca-certificates) and re-run" >&2
  exit 1
fi
bin=$(command -v docker-registry)
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/bin" "$d/etc/docker/registry" "$d/etc/ssl/certs" "$d/var/lib/registry" "$d/tmp"
cp "$bin" "$d/bin/registry"
cp -L "$bundle" "$d$bundle"
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
  -m "$local_build_marker $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo unknown)" \
  - "$image" >/dev/null
echo "==> built $image locally" >&2
