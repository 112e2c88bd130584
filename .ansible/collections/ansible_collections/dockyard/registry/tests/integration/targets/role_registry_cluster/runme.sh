#!/usr/bin/env bash
# Two registry replicas on S3 (moto) with a Redis cache behind HAProxy, a pull-through
# cache, and the faults the role must refuse. Everything started here is removed by the
# EXIT trap (cleanup.yml), also when a step fails.
set -eux -o pipefail

config=../../integration_config.yml   # the harness's variables (ansible-test copies it here)
services=/tmp/i9-cluster/services/vars.json
log=/tmp/i9-cluster-rerun.log
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

cleanup() {
  ansible-playbook -i inventory.yml cleanup.yml -e "@$config" || true
  rm -f "$log"
}
trap cleanup EXIT

ansible-playbook -i inventory.yml setup.yml -e "@$config"

deploy=(ansible-playbook -i inventory.yml dockyard.registry.deploy_cluster
        -e "@$services" -e lb_name=registry.i9.test -e lb_port=5930)

"${deploy[@]}"
ansible-playbook -i inventory.yml test.yml -e "@$config" -e "@$services" -e @/tmp/i9-cluster/image.json

# Garbage collection of both replicas (issue 10): read-only one at a time, one collection on the
# shared S3 storage, Redis FLUSHDB, writable again; its configuration files come back byte for
# byte, which the re-run below checks (changed=0).
ansible-playbook -i inventory.yml gc.yml -e "@$config" -e "@$services"

# The whole play again, after the tests stopped and restarted a replica: nothing changes.
# -vvv so that the secret check below sees everything Ansible can print.
"${deploy[@]}" -vvv > "$log" 2>&1 || { cat "$log"; exit 1; }
sed -n '/^PLAY RECAP/,$p' "$log"
if sed -n '/^PLAY RECAP/,$p' "$log" | grep -E 'changed=[1-9]|failed=[1-9]|unreachable=[1-9]'; then
  echo "the re-run changed something (or failed): see above" >&2
  exit 1
fi
grep -c 'ok=' <(sed -n '/^PLAY RECAP/,$p' "$log") | grep -qx 3

# No secret in the -vvv output: the S3 secret key, the Redis and user passwords, http.secret.
secret_file=/tmp/i9-cluster/replica-a/private/http_secret
test -s "$secret_file"
set +x  # the loop handles the secrets themselves
read_var() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$services" "$1"; }
for secret in "$(read_var i9_s3_secret_key)" "$(read_var i9_redis_password)" "$(read_var i9_password)" \
              "$(cat "$secret_file")"; do
  if grep -qF -- "$secret" "$log"; then
    echo "a secret appears in the -vvv output of deploy_cluster.yml" >&2
    exit 1
  fi
done
set -x
echo "role_registry_cluster: all checks passed"
