#!/usr/bin/env bash
# make release-smoke (and make release, after the matrix): build the collection tarball and prove it installs and works on its own.
#
#  1. ansible-galaxy collection build -> $RELEASE_DIR/dist/dockyard-registry-<version>.tar.gz
#  2. install it into a clean, empty ANSIBLE_COLLECTIONS_PATH together with its dependencies
#     (galaxy.yml: community.docker, community.crypto) taken from the installed `ansible`
#     package, offline: Galaxy is never asked (it cannot be reached from here);
#  3. a smoke playbook against that installed copy only (site-packages collections hidden):
#     every module documented, htpasswd_user writing a file (and a second run changed=0),
#     registry_info against a real registry process, the role's playbooks parse.
#
# Environment: RELEASE_DIR (scratch dir, required; the Makefile sets it under the build dir).
# Uses ansible-galaxy, ansible-playbook, ansible-doc and python3 first on PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${RELEASE_DIR:?run it through make release-smoke (RELEASE_DIR is set there)}
t0=$(date +%s)
version=$(sed -n 's/^version: *//p' "$here/galaxy.yml")
python=$(dirname "$(command -v ansible-galaxy)")/python3

rm -rf "$out"
mkdir -p "$out/dist" "$out/collections" "$out/smoke"

echo "==> release: building dockyard.registry $version"
(cd "$here" && ansible-galaxy collection build --force --output-path "$out/dist" >/dev/null)
tarball=$out/dist/dockyard-registry-$version.tar.gz
[ -f "$tarball" ] || { echo "error: $tarball was not built" >&2; exit 1; }

# The dependencies, as directories of the installed ansible package (each has MANIFEST.json):
# ansible-galaxy installs a `type: dir` requirement offline and checks its version against
# the bounds in our galaxy.yml, so a bound the package does not meet fails here.
site=$("$python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])' 2>/dev/null) || {
  echo "error: the ansible package (with community.docker and community.crypto) is not installed next to $python" >&2; exit 1; }
cat >"$out/requirements.yml" <<EOF
collections:
  - name: $tarball
    type: file
EOF
"$python" - "$here/galaxy.yml" "$site" >>"$out/requirements.yml" <<'PY'
import json, os, sys, yaml
# Our dependencies and theirs (community.docker needs community.library_inventory_filtering_v1).
todo = list((yaml.safe_load(open(sys.argv[1])).get("dependencies") or {}))
seen = []
while todo:
    name = todo.pop(0)
    if name in seen:
        continue
    seen.append(name)
    ns, coll = name.split(".")
    path = os.path.join(sys.argv[2], ns, coll)
    manifest = os.path.join(path, "MANIFEST.json")
    if not os.path.isfile(manifest):
        sys.exit("error: dependency %s is not in the installed ansible package (%s)" % (name, path))
    todo.extend(json.load(open(manifest))["collection_info"].get("dependencies") or {})
    print("  - name: %s\n    type: dir" % path)
PY

# From here on only what we install: no site-packages collections, nothing from ~/.ansible
# or the build's own install (so "already installed" cannot short-cut the install either).
export ANSIBLE_COLLECTIONS_PATH=$out/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_ROLES_PATH=$out/roles-none
echo "==> release: installing the tarball and its dependencies into the empty $out/collections (offline)"
ansible-galaxy collection install --offline -r "$out/requirements.yml" -p "$out/collections"
ansible-galaxy collection list -p "$out/collections" 2>/dev/null | tee "$out/installed.txt"
for c in dockyard.registry community.docker community.crypto; do
  grep -q "^$c " "$out/installed.txt" || { echo "error: $c is not installed in $out/collections" >&2; exit 1; }
done
grep -q "^dockyard.registry *$version *\$" "$out/installed.txt" || { echo "error: dockyard.registry $version expected" >&2; exit 1; }
installed=$out/collections/ansible_collections/dockyard/registry
for unwanted in tests/output .venv changelogs/.plugin-cache.yaml; do
  [ ! -e "$installed/$unwanted" ] || { echo "error: the tarball carries $unwanted" >&2; exit 1; }
done

echo "==> release: smoke playbook against the installed copy"
# A real registry process (Debian's docker-registry, hack/ensure-packages.sh) on a free port.
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$out/smoke/data"
cat >"$out/smoke/registry.yml" <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $out/smoke/data}}
http: {addr: 127.0.0.1:$port}
EOF
registry_bin=$(command -v docker-registry || true)
if [ -z "$registry_bin" ]; then
  echo "error: docker-registry is not installed (make packages installs it)" >&2; exit 1
fi
env -u AWS_CA_BUNDLE "$registry_bin" serve "$out/smoke/registry.yml" >"$out/smoke/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true; wait $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
  sleep 0.2
done

ansible-doc -l dockyard.registry 2>&1 | tee "$out/smoke/modules.txt"
modules=$(find "$installed/plugins/modules" -maxdepth 1 -name '*.py' -printf '%f\n' | sed 's|\.py$||' | sort)
for m in $modules; do
  grep -q "^dockyard.registry.$m " "$out/smoke/modules.txt" || { echo "error: ansible-doc does not list $m" >&2; exit 1; }
done
# every module's documentation renders (one ansible-doc run for all of them)
# shellcheck disable=SC2046,SC2086  # one argument per module
ansible-doc $(printf 'dockyard.registry.%s ' $modules) >/dev/null

cat >"$out/smoke/smoke.yml" <<'EOF'
---
- name: Smoke test of the installed dockyard.registry
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: A user in an htpasswd file
      dockyard.registry.htpasswd_user:
        path: "{{ smoke_dir }}/htpasswd"
        name: smoke
        password: smoke-password
        mode: "0600"
      register: user

    - name: The same user again
      dockyard.registry.htpasswd_user:
        path: "{{ smoke_dir }}/htpasswd"
        name: smoke
        password: smoke-password
        mode: "0600"
      register: user_again

    - name: The registry's catalog
      dockyard.registry.registry_info:
        registry: "http://127.0.0.1:{{ smoke_port }}"
      register: info

    - name: What the installed collection did
      ansible.builtin.assert:
        that:
          - user is changed
          - user_again is not changed
          - lookup('ansible.builtin.file', smoke_dir ~ '/htpasswd') is match('^smoke:\$2[aby]\$')
          - info.repositories == []
EOF
ansible-playbook -i localhost, -c local "$out/smoke/smoke.yml" -e smoke_dir="$out/smoke" -e smoke_port="$port"
# The playbooks and the roles they use (community.docker, community.crypto modules) resolve
# from the clean collections path alone.
for pb in "$installed"/playbooks/*.yml; do
  ansible-playbook -i localhost, --syntax-check "dockyard.registry.$(basename "$pb" .yml)" >/dev/null
  echo "syntax ok: dockyard.registry.$(basename "$pb" .yml)"
done
echo "==> release: dockyard.registry $version: $tarball installs with its dependencies and works ($(( $(date +%s) - t0 ))s)"
