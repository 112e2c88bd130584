#!/usr/bin/env bash
# Services of the role_registry_client test, all private to it (names and paths "dyrc"):
#   - the name dyrc-registry.test for ::1 in /etc/hosts. Docker treats 127.0.0.0/8 (and so
#     localhost) as an insecure registry and skips TLS verification there, so only a name
#     that resolves to another loopback address (::1) shows whether Docker needs the CA;
#   - registries (docker-registry processes) on [::1]: 5811 TLS (also the mirror),
#     5812 TLS + htpasswd + client certificates, 5813 plain HTTP, 5814 TLS (the upstream
#     that is stopped to prove the mirror is used);
#   - a second dockerd (own data/exec root, socket, pid file, --config-file, bridge dyrc0,
#     --iptables=false; never --bridge=none, which deletes the main engine's docker0);
#   - a second containerd (own root, state, socket, config.toml).
# The main Docker engine, /etc/docker/daemon.json, /etc/containerd and /etc/containers are
# never touched. Usage: services.sh up DIR PYTHON | down DIR | restart-containerd DIR |
# stop DIR REGISTRY_PORT | pid DIR dockerd|containerd
set -euo pipefail
cmd=$1
dir=${2:?directory}
name=dyrc-registry.test
hosts_line="::1 $name  # dockyard.registry role_registry_client test"
docker_sock=unix:///run/dyrc-docker.sock
containerd_sock=/run/dyrc-containerd/containerd.sock

log() { printf '==> %s\n' "$*" >&2; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 "$((limit * 5))"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "error: $what did not come up within ${limit}s" >&2
  return 1
}

start_registry() {  # start_registry PORT KIND
  local port=$1 kind=$2 conf=$dir/registries/$1/config.yml
  mkdir -p "$dir/registries/$port/data"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage: {filesystem: {rootdirectory: $dir/registries/$port/data}, delete: {enabled: true}}"
    echo "http:"
    echo "  addr: '[::1]:$port'"
    echo "  secret: dyrc-$port"
    if [ "$kind" != plain ]; then
      echo "  tls:"
      echo "    certificate: $dir/pki/server.crt"
      echo "    key: $dir/pki/server.key"
      if [ "$kind" = auth ]; then
        echo "    clientcas: [$dir/pki/ca.crt]"
      fi
    fi
    if [ "$kind" = auth ]; then
      echo "auth: {htpasswd: {realm: dyrc, path: $dir/htpasswd}}"
    fi
  } > "$conf"
  env -u AWS_CA_BUNDLE setsid docker-registry serve "$conf" > "$dir/logs/registry-$port.log" 2>&1 < /dev/null &
  echo $! > "$dir/run/registry-$port.pid"
}

start_containerd() {
  setsid containerd --config "$dir/containerd/config.toml" > "$dir/logs/containerd.log" 2>&1 < /dev/null &
  echo $! > "$dir/run/containerd.pid"
  wait_for 30 "the test containerd" ctr --address "$containerd_sock" version
}

stop_pid() {  # stop_pid PIDFILE
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

case $cmd in
up)
  python=${3:?python}
  mkdir -p "$dir"/{logs,run,pki,docker,containerd/certs.d,home}
  grep -qF "$hosts_line" /etc/hosts || echo "$hosts_line" >> /etc/hosts
  "$python" "$(dirname "$0")/pki.py" "$dir/pki" "$name" localhost
  # skopeo's --cert-dir layout (ca.crt, client.cert + client.key), to seed the mTLS registry
  mkdir -p "$dir/pki-client"
  cp "$dir/pki/ca.crt" "$dir/pki-client/ca.crt"
  cp "$dir/pki/client.crt" "$dir/pki-client/client.cert"
  cp "$dir/pki/client.key" "$dir/pki-client/client.key"
  "$python" -c 'import bcrypt, sys; print("dyrc:" + bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(5)).decode())' \
    "${DYRC_PASSWORD:?DYRC_PASSWORD}" > "$dir/htpasswd"
  start_registry 5811 tls
  start_registry 5812 auth
  start_registry 5813 plain
  start_registry 5814 tls
  for port in 5811 5812 5813 5814; do
    wait_for 20 "registry $port" bash -c "exec 3<>/dev/tcp/::1/$port"
  done
  # The second dockerd: user keys that the role must keep, none of the keys it manages.
  printf '{\n  "log-level": "warn",\n  "max-concurrent-downloads": 2,\n  "labels": ["dyrc=kept"]\n}\n' \
    > "$dir/docker/daemon.json"
  ip link show dyrc0 >/dev/null 2>&1 || {
    ip link add dyrc0 type bridge
    ip addr add 172.31.251.1/24 dev dyrc0
    ip link set dyrc0 up
  }
  setsid dockerd --data-root /var/lib/dyrc-docker --exec-root /run/dyrc-docker \
    --pidfile /run/dyrc-docker.pid -H "$docker_sock" --config-file "$dir/docker/daemon.json" \
    --bridge dyrc0 --iptables=false --ip-masq=false > "$dir/logs/dockerd.log" 2>&1 < /dev/null &
  wait_for 60 "the test dockerd" docker -H "$docker_sock" info
  # The second containerd, as a node would have it before the role: no config_path.
  printf 'version = 2\nroot = "/var/lib/dyrc-containerd"\nstate = "/run/dyrc-containerd"\n[grpc]\n  address = "%s"\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "dyrc.invalid/pause:3.6"\n' \
    "$containerd_sock" > "$dir/containerd/config.toml"
  start_containerd
  ;;
restart-containerd)
  stop_pid "$dir/run/containerd.pid"
  start_containerd
  ;;
stop)
  stop_pid "$dir/run/registry-$3.pid"
  ;;
pid)
  case $3 in
    dockerd) cat /run/dyrc-docker.pid ;;
    containerd) cat "$dir/run/containerd.pid" ;;
  esac
  ;;
down)
  for file in "$dir"/run/registry-*.pid; do [ -e "$file" ] && stop_pid "$file"; done
  stop_pid "$dir/run/containerd.pid"
  if [ -f /run/dyrc-docker.pid ]; then
    pid=$(cat /run/dyrc-docker.pid)
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  ip link show dyrc0 >/dev/null 2>&1 && ip link delete dyrc0
  # Rewritten in place (a bind-mounted /etc/hosts cannot be replaced by a rename), and never
  # emptied on the way: the other integration lane resolves localhost all the time, and a
  # truncate-then-write (`cat x > /etc/hosts`) left it without a localhost line for a moment.
  # Overwrite the bytes (the lines before ours, localhost among them, stay as they are), then cut
  # the old tail off.
  if grep -qF "$hosts_line" /etc/hosts; then
    grep -vF "$hosts_line" /etc/hosts > /etc/hosts.dyrc || true
    dd if=/etc/hosts.dyrc of=/etc/hosts conv=notrunc status=none
    truncate -s "$(stat -c %s /etc/hosts.dyrc)" /etc/hosts
    rm -f /etc/hosts.dyrc
  fi
  for path in /var/lib/dyrc-docker /var/lib/dyrc-containerd /run/dyrc-containerd; do
    if [ -d "$path" ]; then
      # unmount what a daemon left mounted below it before deleting
      grep -o " ${path}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
      rm -rf "$path"
    fi
  done
  rm -rf /run/dyrc-docker "$dir"
  rm -rf /etc/docker/certs.d/$name:5811 /etc/docker/certs.d/$name:5812 /etc/docker/certs.d/$name:5813 \
         /etc/docker/certs.d/$name:5814
  # trust_registry.yml (tasks/playbooks.yml) trusts the deployed registry as localhost:5820
  rm -rf /etc/docker/certs.d/localhost:5820
  ;;
*)
  echo "usage: $0 up DIR PYTHON | down DIR | restart-containerd DIR | stop DIR PORT | pid DIR dockerd|containerd" >&2
  exit 2
  ;;
esac
