#!/usr/bin/env bash
# The second half of `make demo` (the Makefile has already made the virtualenv, the
# registry:2 image and installed the collection; PATH and ANSIBLE_COLLECTIONS_PATH point
# at them). Deploys a TLS + htpasswd registry on localhost with the role, then uses it
# with the docker CLI: trust the CA, log in, push a tiny image, remove it, pull it back.
#
# Safe to run again: the role changes nothing the second time (changed=0), the demo
# password is kept, the image is pushed again (the registry already has its blobs).
#
# Environment:
#   DEMO_PASSWORD  password of the demo user (default: generated once and kept in
#                  $BASE_DIR/private/demo-password, mode 0600)
#   DEMO_USER      user name (default: demo)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
name=registry                          # the role's defaults: registry_name, registry_port
port=5000
base_dir=/opt/registry/$name
registry=localhost:$port
user=${DEMO_USER:-demo}
password_file=$base_dir/private/demo-password
inventory=$here/playbooks/inventory/localhost.yml
image=$registry/demo/hello:latest

log() { printf '==> %s\n' "$*"; }

for tool in ansible-playbook docker; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found on PATH (run make demo)" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
  echo "error: the demo writes $base_dir and /etc/docker/certs.d; run it as root" >&2
  exit 1
fi

# The demo password: given, or generated once and kept next to the registry's other secrets.
umask 077
if [ -n "${DEMO_PASSWORD:-}" ]; then
  password=$DEMO_PASSWORD
  password_note="from DEMO_PASSWORD"
else
  if [ ! -s "$password_file" ]; then
    install -d -m 0755 "$(dirname "$base_dir")" "$base_dir"
    install -d -m 0700 "$(dirname "$password_file")"
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$password_file.tmp"
    mv "$password_file.tmp" "$password_file"
    log "generated the demo password into $password_file"
  fi
  chmod 0600 "$password_file"
  password=$(<"$password_file")
  password_note="in $password_file"
fi

# The password reaches Ansible through a 0600 vars file, never the command line.
vars_file=$(mktemp)
docker_tmp=$(mktemp -d)
trap 'rm -rf "$vars_file" "$docker_tmp"' EXIT
python3 - "$user" "$password" > "$vars_file" <<'PY'
import json, sys
print(json.dumps({"registry_users": [{"name": sys.argv[1], "password": sys.argv[2]}]}))
PY
umask 022

log "deploying the registry with playbooks/deploy_registry.yml (role dockyard.registry.registry)"
started=$(date +%s.%N)
ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ansible-playbook -i "$inventory" dockyard.registry.deploy_registry -e "@$vars_file" \
  | tee "$docker_tmp/play.log"
finished=$(date +%s.%N)
role_seconds=$(python3 -c "print(f'{$finished - $started:.1f}')")
recap=$(grep -E '^localhost +:' "$docker_tmp/play.log" | tr -s ' ' || true)

log "trusting the registry's CA in the Docker engine: /etc/docker/certs.d/$registry/ca.crt"
install -d -m 0755 "/etc/docker/certs.d/$registry"
install -m 0644 "$base_dir/certs/ca.crt" "/etc/docker/certs.d/$registry/ca.crt"

log "docker login $registry as $user"
docker login "$registry" -u "$user" --password-stdin <<<"$password" >/dev/null
log "logged in"

log "building a tiny image locally (docker import of a one-file tar, no Docker Hub)"
mkdir -p "$docker_tmp/rootfs"
printf 'hello from the dockyard.registry demo\n' > "$docker_tmp/rootfs/hello.txt"
tar -C "$docker_tmp/rootfs" --mtime=@0 --owner=0 --group=0 -c hello.txt \
  | docker import -c 'CMD ["/hello.txt"]' - "$image" >/dev/null
pushed_id=$(docker image inspect --format '{{.Id}}' "$image")

log "docker push $image"
docker push "$image"
log "removing it locally, then pulling it back"
docker image rm "$image" >/dev/null
docker pull "$image"
pulled_id=$(docker image inspect --format '{{.Id}}' "$image")
if [ "$pulled_id" != "$pushed_id" ]; then
  echo "error: pulled image $pulled_id differs from the pushed $pushed_id" >&2
  exit 1
fi

cat <<EOF

==> the registry is up
    URL:        https://$registry  (API: https://$registry/v2/)
    user:       $user
    password:   $password_note
    CA:         $base_dir/certs/ca.crt  (trusted by Docker in /etc/docker/certs.d/$registry/ca.crt)
    data:       $base_dir/data
    image:      $image pushed and pulled back (same ID $pushed_id)
    role run:   ${role_seconds}s   $recap

    try:        curl --cacert $base_dir/certs/ca.crt -u $user https://$registry/v2/_catalog
    tear down:  ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-} $(command -v ansible-playbook) \\
                  -i $inventory dockyard.registry.deploy_registry -e registry_state=absent
                (add -e registry_purge_data=true to delete the images, users and certificates too)
EOF
