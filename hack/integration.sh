#!/usr/bin/env bash
# Run the integration targets against real registries (make integration).
#
# Starts the harness (tests/integration/harness/registries.py up), which writes
# tests/integration/integration_config.yml INSIDE the installed collection, runs
# `ansible-test integration` from the installed collection, and always tears the
# harness down again. The ports are fixed, so runs on one machine are serialised with a
# lock file.
#
# A full run (no TARGETS) runs the targets in two lanes at once, two `ansible-test integration`
# processes against the one harness: a target's playbook keeps about one core busy and this
# machine has two. hack/integration-lanes says which target runs in which lane and why (targets
# that share mutable state -- the fault proxy, the htpasswd user AWS -- are in the same lane); a
# target it does not list runs in lane 1. Lane 2 runs from its own copy of the installed
# collection (<collections>-lane2), since ansible-test writes tests/output/ under the collection.
# Each lane's output goes to the terminal with a "[lane N]" prefix and to its own log.
# TARGETS="a b" runs the named targets (ansible-test patterns) in one lane, one after another.
#
# Environment: ANSIBLE_COLLECTIONS_PATH (set by the Makefile), TARGETS, DOCKYARD_IT_DIR
# (scratch dir, default /tmp/dockyard-it), DOCKYARD_IT_KEEP=1 (leave the harness up
# afterwards, for debugging), ANSIBLE_TEST_PY (default 3.11), CI (when set, also remove
# every dockyard.test=1 container first with hack/clean-containers.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
collections=${ANSIBLE_COLLECTIONS_PATH:?run it through make integration, which sets ANSIBLE_COLLECTIONS_PATH to the installed collection}
collections=${collections%%:*}
collections=${collections%/}
coll_dir=$collections/ansible_collections/dockyard/registry
lane2_collections=$collections-lane2
lane2_dir=$lane2_collections/ansible_collections/dockyard/registry
lanes_file=$here/hack/integration-lanes
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

lane_pids=()

# shellcheck disable=SC2317  # called from the EXIT trap
teardown() {
  # A lane still running (an interrupted run) goes first, with everything it started: each lane
  # is its own process group.
  local pid
  for pid in ${lane_pids[@]+"${lane_pids[@]}"}; do
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${DOCKYARD_IT_KEEP:-0}" = 1 ]; then
    echo "==> DOCKYARD_IT_KEEP=1: harness left running; variables in $config" >&2
    echo "    stop it with: $python $harness down --config $config --workdir $workdir" >&2
  else
    "$python" "$harness" down --config "$config" --workdir "$workdir" || true
    rm -f "$lane2_dir/tests/integration/integration_config.yml"
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
mkdir -p "$workdir/logs"
cd "$coll_dir" || exit 2

# The lanes: every target ansible-test would run, split by hack/integration-lanes.
lane1=$targets
lane2=
if [ -z "$targets" ]; then
  if ! all=$(ansible-test integration --list-targets 2>/dev/null); then
    echo "==> integration: FAILED (ansible-test integration --list-targets failed)" >&2
    exit 2
  fi
  [ -f "$lanes_file" ] || echo "==> $lanes_file is missing: every target runs in lane 1" >&2
  lane1=
  for target in $all; do
    lane=$(sed 's/#.*//' "$lanes_file" 2>/dev/null | awk -v t="$target" '$1 == t { print $2; exit }')
    case $lane in
      1) lane1="$lane1 $target" ;;
      2) lane2="$lane2 $target" ;;
      '') echo "==> $target is not in hack/integration-lanes: it runs in lane 1 (add it there with its lane and reason)" >&2
         lane1="$lane1 $target" ;;
      *) echo "==> $target has lane \"$lane\" in hack/integration-lanes, which is not 1 or 2: it runs in lane 1" >&2
         lane1="$lane1 $target" ;;
    esac
  done
fi

# run_lane N DIR COLLECTIONS LOG PREFIX TARGET...: ansible-test in the collection at DIR, its
# output to LOG and (with PREFIX before each line) to the terminal; $workdir/logs/lane-N.rc gets
# its exit code and the seconds it took.
run_lane() {
  local n=$1 dir=$2 colls=$3 log=$4 prefix=$5 lane_start=$SECONDS rc
  shift 5
  # --continue-on-error: one failing target must not hide the state of the others.
  (cd "$dir" && ANSIBLE_COLLECTIONS_PATH=$colls ANSIBLE_ROLES_PATH=$dir/roles \
     ansible-test integration --local --python "$py" --color no --continue-on-error "$@") 2>&1 < /dev/null |
    tee "$log" | sed -u "s/^/$prefix/"
  rc=${PIPESTATUS[0]}
  echo "$rc $((SECONDS - lane_start))" > "$workdir/logs/lane-$n.rc"
  return "$rc"
}

log1=$workdir/logs/ansible-test.log
log2=$workdir/logs/ansible-test-lane2.log
rm -f "$log2" "$workdir"/logs/lane-*.rc
if [ -z "$lane2" ]; then
  echo "==> ansible-test integration ${targets:-(all targets)}"
  # shellcheck disable=SC2086  # space-separated lists of target names
  run_lane 1 "$coll_dir" "$collections" "$log1" "" $lane1
  rc=$?
else
  # Lane 2's own copy of the installed collection, made now: it must have the
  # integration_config.yml the harness just wrote. Not the results of earlier runs.
  rm -rf "$lane2_collections"
  mkdir -p "$lane2_collections"
  (cd "$collections" && tar --exclude=./ansible_collections/dockyard/registry/tests/output -cf - .) |
    (cd "$lane2_collections" && tar -xf -) || { echo "==> integration: FAILED (cannot copy $collections)" >&2; exit 2; }
  echo "==> ansible-test integration in two lanes (hack/integration-lanes):"
  echo "    lane 1:$lane1"
  echo "    lane 2:$lane2"
  # Job control gives each lane its own process group, so that teardown can stop a lane and
  # everything it started.
  set -m
  # shellcheck disable=SC2086  # space-separated lists of target names
  run_lane 1 "$coll_dir" "$collections" "$log1" "[lane 1] " $lane1 &
  lane_pids+=("$!")
  # shellcheck disable=SC2086
  run_lane 2 "$lane2_dir" "$lane2_collections" "$log2" "[lane 2] " $lane2 &
  lane_pids+=("$!")
  set +m
  rc=0
  for pid in "${lane_pids[@]}"; do
    wait "$pid"
    lane_rc=$?
    [ "$rc" -ne 0 ] || rc=$lane_rc
  done
  lane_pids=()
fi
elapsed=$(( $(date +%s) - started ))

# summarize LOG: the targets ansible-test started, and those it listed as failed at the end
# ("FATAL: The N integration test(s) listed below ... failed ...:", one target a line).
ran_in() { sed -n -E 's/^Running (.*) integration test (role|script)$/\1/p' "$1" | tr '\n' ' '; }
failed_in() {
  sed -n '/^[A-Z]*: The [0-9]* integration test(s) listed below/,$p' "$1" | tail -n +2 |
    grep -E '^[A-Za-z0-9_]+$' | tr '\n' ' '
}
echo
echo "==> integration summary"
for n in 1 2; do
  if [ "$n" = 1 ]; then log=$log1; dir=$coll_dir; else log=$log2; dir=$lane2_dir; fi
  [ -f "$log" ] || continue
  lane_rc='?' lane_seconds='?'
  if [ -f "$workdir/logs/lane-$n.rc" ]; then read -r lane_rc lane_seconds < "$workdir/logs/lane-$n.rc"; fi
  [ -z "$lane2" ] || echo "    lane $n (${lane_seconds}s, ansible-test exit code $lane_rc):"
  ran=$(ran_in "$log")
  failed=$(failed_in "$log")
  echo "    targets run: ${ran:-none}"
  if [ -n "${failed// /}" ]; then
    echo "    failed:      $failed"
  fi
  echo "    results:     $dir/tests/output/ (ansible-test output also in $log)"
done
echo "    duration:    ${elapsed}s"
echo "    logs:        $workdir/logs/ (registries, token server, fault proxy, moto; written at teardown)"
if [ "$rc" -eq 0 ]; then
  echo "==> integration: PASSED"
else
  echo "==> integration: FAILED (ansible-test exit code $rc)"
fi
exit "$rc"
