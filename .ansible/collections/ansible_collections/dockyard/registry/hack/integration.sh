#!/usr/bin/env bash
# Run the integration targets against real registries (make integration).
#
# Starts the harness (tests/integration/harness/registries.py up), which writes
# tests/integration/integration_config.yml INSIDE the installed collection, runs
# `ansible-test integration` from the installed collection, and always tears the
# harness down again. TARGETS selects targets (default: all). The ports are fixed,
# so runs on one machine are serialised with a lock file.
#
# Environment: ANSIBLE_COLLECTIONS_PATH (set by the Makefile), TARGETS, DOCKYARD_IT_DIR
# (scratch dir, default /tmp/dockyard-it), DOCKYARD_IT_KEEP=1 (leave the harness up
# afterwards, for debugging), ANSIBLE_TEST_PY (default 3.11), CI (when set, also remove
# every dockyard.test=1 container first with hack/clean-containers.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
collections=${ANSIBLE_COLLECTIONS_PATH:?run it through make integration, which sets ANSIBLE_COLLECTIONS_PATH to the installed collection}
collections=${collections%%:*}
coll_dir=$collections/ansible_collections/dockyard/registry
workdir=${DOCKYARD_IT_DIR:-/tmp/dockyard-it}
py=${ANSIBLE_TEST_PY:-3.11}
targets=${TARGETS:-}

if [ ! -d "$coll_dir" ]; then
  echo "error: the collection is not installed in $coll_dir (run make install first)" >&2
  exit 2
fi
harness=$coll_dir/tests/integration/harness/registries.py
config=$coll_dir/tests/integration/integration_config.yml
# The harness needs the project's virtualenv (bcrypt, cryptography, requests, moto): the
# python next to ansible-test.
if ! command -v ansible-test >/dev/null 2>&1; then
  echo "error: ansible-test is not on PATH (activate the virtualenv, or run make integration)" >&2
  exit 2
fi
python=$(dirname "$(command -v ansible-test)")/python3
[ -x "$python" ] || python=$(command -v python3)

# One harness per machine: its ports are fixed.
exec 9>"${DOCKYARD_IT_LOCK:-/tmp/dockyard-it.lock}"
if ! flock -n 9; then
  echo "==> another integration run holds ${DOCKYARD_IT_LOCK:-/tmp/dockyard-it.lock}; waiting for it" >&2
  flock 9
fi

export DOCKYARD_IT_LOCK_HELD=1

if [ -n "${CI:-}" ]; then
  # Containers of earlier runs come back with their restart policy when dockerd starts.
  "$here/hack/clean-containers.sh"
fi

# shellcheck disable=SC2317  # called from the EXIT trap
teardown() {
  if [ "${DOCKYARD_IT_KEEP:-0}" = 1 ]; then
    echo "==> DOCKYARD_IT_KEEP=1: harness left running; variables in $config" >&2
    echo "    stop it with: $python $harness down --config $config --workdir $workdir" >&2
  else
    "$python" "$harness" down --config "$config" --workdir "$workdir" || true
  fi
}
trap teardown EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
echo "==> integration harness up (workdir $workdir)"
if ! "$python" "$harness" up --config "$config" --workdir "$workdir"; then
  echo "==> integration: FAILED (the harness did not come up; see $workdir/logs and docker logs dockyard-it-*)" >&2
  exit 1
fi

echo "==> ansible-test integration ${targets:-(all targets)}"
cd "$coll_dir" || exit 2
log=$workdir/logs/ansible-test.log
mkdir -p "$workdir/logs"
# --continue-on-error: one failing target must not hide the state of the others.
# shellcheck disable=SC2086  # TARGETS is a space-separated list of target names
ansible-test integration --local --python "$py" --color no --continue-on-error $targets 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
elapsed=$(( $(date +%s) - started ))

ran=$(sed -n 's/^Running \(.*\) integration test role$/\1/p' "$log" | tr '\n' ' ')
# ansible-test ends with "FATAL: The N integration test(s) listed below ... failed ...:" and one target a line.
failed=$(sed -n '/^[A-Z]*: The [0-9]* integration test(s) listed below/,$p' "$log" | tail -n +2 |
  grep -E '^[A-Za-z0-9_]+$' | tr '\n' ' ')
echo
echo "==> integration summary"
echo "    targets run: ${ran:-none}"
if [ -n "${failed// /}" ]; then
  echo "    failed:      $failed"
fi
echo "    duration:    ${elapsed}s"
echo "    results:     $coll_dir/tests/output/ (ansible-test output also in $log)"
echo "    logs:        $workdir/logs/ (registries, token server, fault proxy, moto; written at teardown)"
if [ "$rc" -eq 0 ]; then
  echo "==> integration: PASSED"
else
  echo "==> integration: FAILED (ansible-test exit code $rc)"
fi
exit "$rc"
