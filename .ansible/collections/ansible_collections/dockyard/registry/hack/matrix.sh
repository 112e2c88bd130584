#!/usr/bin/env bash
# The ansible-core version matrix (make matrix, make matrix-ends, make target-pythons).
#
#   hack/matrix.sh venvs   [CORE...]   make (or reuse) one virtualenv per ansible-core release
#   hack/matrix.sh check   [CORE...]   ansible-test sanity (no ignore files) + units in each
#   hack/matrix.sh integration CORE [TARGET...]   integration targets with that core
#   hack/matrix.sh molecule CORE       the Molecule scenarios with that core
#   hack/matrix.sh target-pythons      units + compile on every managed-node Python claimed
#
# Each release gets its own virtualenv on a Python it supports as a controller, under
# $MATRIX_DIR (the build dir, outside the checkout). A virtualenv is rebuilt only when its
# inputs change (the pins below, requirements/matrix.in, requirements/constraints.txt):
# a stamp file holds a hash of them. ansible-test keeps its sanity virtualenvs in
# ~/.ansible/test/venv, keyed by their requirements, so they are shared across runs too.
#
# Environment: MATRIX_DIR (required; the Makefile sets it), COLL_DIR (the installed
# collection, required for check/integration/molecule), PYENV_ROOT (default ~/.pyenv).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
matrix_dir=${MATRIX_DIR:?run it through make (MATRIX_DIR is the build dir for the matrix)}
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}

# core  exact ansible-core  controller Python  the ansible package whose collections it gets
# The two ends get the collection's dependencies (galaxy.yml: community.docker, community.crypto,
# and theirs) at the versions the `ansible` package of their release ships, unpacked from that
# package's wheel into the virtualenv's site-packages where pip would put them (installing the
# whole package, 100+ collections, took 7 min here): the role and the integration tests run
# there. The middle releases run sanity and units only, which need ansible-core alone.
# Python: pip on 3.11 offers ansible-core up to 2.19; 2.20 and 2.21 need Python >= 3.12.
declare -A CORE_PIN=([2.17]=2.17.14 [2.18]=2.18.19 [2.19]=2.19.14 [2.20]=2.20.10 [2.21]=2.21.5)
declare -A CORE_PY=([2.17]=3.11 [2.18]=3.11 [2.19]=3.11 [2.20]=3.12 [2.21]=3.12)
declare -A CORE_ANSIBLE=([2.17]=10.7.0 [2.21]=14.5.0)
ALL_CORES="2.17 2.18 2.19 2.20 2.21"
# The project's own virtualenv (make venv, $VENV) holds ansible-core 2.19.14 on Python 3.11
# with everything the tests need: the matrix uses it for 2.19 instead of making a copy.
SHARED_CORE=2.19
# Managed-node Pythons the modules claim (README "Requirements"); 3.11 is the controller's.
TARGET_PYTHONS=${TARGET_PYTHONS:-"3.8 3.9 3.10 3.11 3.12 3.13"}
# The ansible-core whose ansible-test checks the managed-node Pythons: 2.19 supports targets
# 3.8-3.13, the whole claimed range (2.20 and later no longer run modules on 3.8).
TARGET_CORE=2.19

log() { echo "==> $*"; }
now() { date +%s; }

pyenv_python() { # newest pyenv build of a minor version
  local d
  d=$(find "$pyenv_root/versions" -mindepth 1 -maxdepth 1 -name "$1.*" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/bin/python$1" ] || return 1
  echo "$d/bin/python$1"
}

constraints() { # the project's pins, less what each matrix virtualenv chooses itself
  local out=$matrix_dir/constraints.txt
  grep -v -i -E '^(ansible|ansible-core|ansible-lint|ansible-compat|molecule|resolvelib)==' \
    "$here/requirements/constraints.txt" >"$out.$$"
  mv "$out.$$" "$out"
  echo "$out"
}

venv_dir() {
  if [ "$1" = "$SHARED_CORE" ] && [ -n "${VENV:-}" ] && [ -x "$VENV/bin/ansible-test" ]; then
    echo "$VENV"
  else
    echo "$matrix_dir/core-$1"
  fi
}

make_venv() {
  local core=$1 pin=${CORE_PIN[$1]:?unknown core $1} py=${CORE_PY[$1]} dir stamp want py_bin pkgs reqs t0 lockfd
  dir=$(venv_dir "$core")
  stamp=$dir/.installed
  mkdir -p "$matrix_dir"
  # two runs at once (make matrix while make matrix-ends starts) build a virtualenv once
  exec {lockfd}>"$matrix_dir/core-$core.lock"
  flock "$lockfd"
  pkgs="ansible-core==$pin"
  if [ "$core" = "$SHARED_CORE" ] && [ -n "${VENV:-}" ] && [ -x "$VENV/bin/ansible-test" ]; then
    log "ansible-core $core: the project's virtualenv $VENV (ansible-core $pin from requirements/constraints.txt)"
    exec {lockfd}>&-
    return 0
  fi
  reqs=$here/requirements/matrix-units.in  # sanity + units
  [ -n "${CORE_ANSIBLE[$core]:-}" ] && reqs=$here/requirements/matrix.in  # + integration, Molecule
  want=$( { echo "$pkgs $py ${CORE_ANSIBLE[$core]:-}"; cat "$reqs" "$here/requirements/constraints.txt"; dependency_names; } | md5sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "ansible-core $core: virtualenv $dir up to date ($pkgs, Python $py)"
    # a virtualenv made before the optional collections were added gets them now (a quick unzip)
    if [ -n "${CORE_ANSIBLE[$core]:-}" ] && ! optional_collections_present "$dir"; then
      dependency_collections "$dir" "${CORE_ANSIBLE[$core]}"
    fi
    exec {lockfd}>&-
    return 0
  fi
  py_bin=$(pyenv_python "$py") || { echo "error: Python $py not found under $pyenv_root/versions (ansible-core $core needs it)" >&2; exit 2; }
  t0=$(now)
  log "ansible-core $core: virtualenv $dir ($pkgs, Python $py)"
  rm -rf "$dir"
  "$py_bin" -m venv "$dir"
  # shellcheck disable=SC2086  # pkgs is a list of requirement specifiers
  "$dir/bin/pip" install -q --disable-pip-version-check $pkgs -r "$reqs" -c "$(constraints)"
  if [ -n "${CORE_ANSIBLE[$core]:-}" ]; then
    dependency_collections "$dir" "${CORE_ANSIBLE[$core]}"
  fi
  echo "$want" >"$stamp"
  exec {lockfd}>&-
  log "ansible-core $core: virtualenv made in $(( $(now) - t0 ))s"
}

representative_targets() { # one integration target per module: module_<name>, else one that uses it
  local m t role picked=""
  for m in $(find "$here/plugins/modules" -maxdepth 1 -name '*.py' -printf '%f\n' | sed 's|\.py$||' | sort); do
    t=""
    if [ -d "$here/tests/integration/targets/module_$m" ]; then
      t=module_$m
    else
      # a target that calls the module, or one that runs a role that calls it
      t=$(grep -rlw "dockyard.registry.$m" "$here/tests/integration/targets" 2>/dev/null | sed -n 's|.*/targets/\([^/]*\)/.*|\1|p' | head -n 1 || true)
      if [ -z "$t" ]; then
        for role in $(grep -rlw "dockyard.registry.$m" "$here/roles" 2>/dev/null | sed -n 's|.*/roles/\([^/]*\)/.*|\1|p' | sort -u || true); do
          [ -d "$here/tests/integration/targets/role_$role" ] && { t=role_$role; break; }
        done
      fi
    fi
    [ -n "$t" ] || { echo "error: no integration target exercises module $m (add module_$m)" >&2; exit 2; }
    case " $picked " in *" $t "*) ;; *) picked="$picked $t" ;; esac
  done
  echo "$picked"
}

dependency_names() { # the collections galaxy.yml depends on (what dependency_collections unpacks)
  sed -n '/^dependencies:/,/^[a-z_]*:/s/^  \([a-z0-9_]*\.[a-z0-9_]*\):.*/\1/p' "$here/galaxy.yml"
}

# Collections the role uses only for some settings, so not in galaxy.yml's dependencies (README
# "Requirements"): amazon.aws and community.aws for registry_type: ecr. The integration suite
# runs that path, so the matrix virtualenvs of the two ends get them from the same ansible package.
OPTIONAL_COLLECTIONS="amazon.aws community.aws"

site_packages() {
  "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

optional_collections_present() {
  local site c
  site=$(site_packages "$1")
  for c in $OPTIONAL_COLLECTIONS; do
    [ -f "$site/ansible_collections/${c/.//}/MANIFEST.json" ] || return 1
  done
}

dependency_collections() { # galaxy.yml's dependencies, the optional ones (and theirs) from the ansible package's wheel
  local dir=$1 version=$2 wheels=$matrix_dir/wheels site
  mkdir -p "$wheels"
  [ -f "$wheels/ansible-$version-py3-none-any.whl" ] ||
    "$dir/bin/pip" download -q --disable-pip-version-check --no-deps -d "$wheels" "ansible==$version"
  site=$(site_packages "$dir")
  # shellcheck disable=SC2086  # OPTIONAL_COLLECTIONS is a space-separated list of names
  "$dir/bin/python" - "$wheels/ansible-$version-py3-none-any.whl" "$here/galaxy.yml" "$site" $OPTIONAL_COLLECTIONS <<'PY'
import json, sys, zipfile, yaml
wheel, galaxy, site = sys.argv[1:4]
todo = list(yaml.safe_load(open(galaxy)).get("dependencies") or {}) + sys.argv[4:]
done = []
with zipfile.ZipFile(wheel) as zf:
    names = zf.namelist()
    while todo:
        name = todo.pop(0)
        if name in done:
            continue
        done.append(name)
        prefix = "ansible_collections/%s/" % name.replace(".", "/")
        members = [n for n in names if n.startswith(prefix)]
        if not members:
            sys.exit("error: %s is not in %s" % (name, wheel))
        zf.extractall(site, members)
        info = json.loads(zf.read(prefix + "MANIFEST.json"))["collection_info"]
        print("    %s %s (from %s)" % (name, info["version"], wheel.rsplit("/", 1)[-1]))
        todo.extend(info.get("dependencies") or {})
PY
}

need_coll() {
  [ -d "${COLL_DIR:-}" ] || { echo "error: the collection is not installed in COLL_DIR=${COLL_DIR:-} (run make install)" >&2; exit 2; }
}

check_core() { # sanity + units with one release
  local core=$1 dir py t0 t1 t2 rc=0
  dir=$(venv_dir "$core"); py=${CORE_PY[$core]}
  need_coll
  t0=$(now)
  log "ansible-core $core ($("$dir/bin/ansible" --version | head -n 1 | sed 's/.*\[core \(.*\)\]/\1/')): ansible-test sanity --python $py"
  # The venv's bin first: ansible-test then finds this release's ansible-* and its python.
  (cd "$COLL_DIR" && PATH=$dir/bin:$PATH "$dir/bin/ansible-test" sanity --venv --requirements --python "$py" --color no) || rc=1
  t1=$(now)
  log "ansible-core $core: ansible-test units --python $py"
  (cd "$COLL_DIR" && PATH=$dir/bin:$PATH "$dir/bin/ansible-test" units --local --python "$py" --color no) || rc=1
  t2=$(now)
  echo "$core sanity=$(( t1 - t0 ))s units=$(( t2 - t1 ))s rc=$rc" >>"$matrix_dir/times.txt"
  log "ansible-core $core: sanity $(( t1 - t0 ))s, units $(( t2 - t1 ))s: $([ $rc = 0 ] && echo PASSED || echo FAILED)"
  return $rc
}

case ${1:-} in
  venvs)
    shift; mkdir -p "$matrix_dir"
    # shellcheck disable=SC2086  # the list of releases
    [ $# -gt 0 ] || set -- $ALL_CORES
    for c in "$@"; do make_venv "$c"; done ;;
  check)
    shift; mkdir -p "$matrix_dir"; : >"$matrix_dir/times.txt"
    # shellcheck disable=SC2086  # the list of releases
    [ $# -gt 0 ] || set -- $ALL_CORES
    failed=""
    for c in "$@"; do make_venv "$c"; check_core "$c" || failed="$failed $c"; done
    echo; log "matrix summary (sanity, units per ansible-core):"; sed 's/^/    /' "$matrix_dir/times.txt"
    if [ -n "$failed" ]; then log "matrix: FAILED on ansible-core$failed"; exit 1; fi
    log "matrix: PASSED on ansible-core $*" ;;
  representative-targets)
    representative_targets ;;
  integration)
    core=${2:?which ansible-core}; shift 2; need_coll; make_venv "$core"
    dir=$(venv_dir "$core")
    if [ "${1:-}" = "--representative" ]; then
      # shellcheck disable=SC2046  # a space-separated list of target names
      set -- $(representative_targets)
      log "ansible-core $core: one integration target per module:$*"
    fi
    # hack/integration.sh uses the ansible-test (and the python next to it) first on PATH.
    PATH=$dir/bin:$PATH ANSIBLE_TEST_PY=${CORE_PY[$core]} TARGETS="$*" "$here/hack/integration.sh" ;;
  molecule)
    core=${2:?which ansible-core}; need_coll; make_venv "$core"
    dir=$(venv_dir "$core")
    log "Molecule with ansible-core $core"
    (cd "$here/extensions" && PATH=$dir/bin:$PATH "$dir/bin/molecule" test --all) ;;
  target-pythons)
    need_coll; make_venv "$TARGET_CORE"; dir=$(venv_dir "$TARGET_CORE")
    failed=""
    for v in $TARGET_PYTHONS; do
      py_bin=$(pyenv_python "$v") || { log "no Python $v here: managed-node check skipped for it"; continue; }
      t0=$(now)
      if [ "$v" = "${CORE_PY[$TARGET_CORE]}" ]; then
        tvenv=$dir  # the controller's own Python: the matrix virtualenv already has everything
      else
        # A plain virtualenv per target Python with the unit-test requirements (pip picks
        # releases that support that Python; the project's pins are for the controller).
        tvenv=$matrix_dir/target-py$v
        want=$(md5sum <"$here/requirements/target-units.in" | cut -c1-16)
        if ! [ -f "$tvenv/.installed" ] || [ "$(cat "$tvenv/.installed")" != "$want" ]; then
          log "Python $v: virtualenv $tvenv"
          rm -rf "$tvenv"; "$py_bin" -m venv "$tvenv"
          "$tvenv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements/target-units.in"
          echo "$want" >"$tvenv/.installed"
        fi
      fi
      log "managed-node Python $v: ansible-test sanity --test compile, units (ansible-core $TARGET_CORE)"
      # ansible-test finds python$v first on PATH: the target virtualenv's.
      if (cd "$COLL_DIR" && PATH=$tvenv/bin:$dir/bin:$PATH "$dir/bin/ansible-test" sanity --test compile --python "$v" --color no &&
          PATH=$tvenv/bin:$dir/bin:$PATH "$dir/bin/ansible-test" units --local --python "$v" --color no); then
        log "managed-node Python $v: PASSED in $(( $(now) - t0 ))s"
      else
        log "managed-node Python $v: FAILED"; failed="$failed $v"
      fi
    done
    if [ -n "$failed" ]; then log "managed-node Pythons: FAILED on$failed"; exit 1; fi ;;
  *)
    sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
