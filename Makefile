# dockyard.registry — two commands matter: `make demo` and `make test`.
# Everything else is a step they call; each step installs or starts what it needs.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
# The build dir must lie outside this git checkout: ansible-test walks up from the
# installed collection looking for .git and, finding this checkout (where the build dir
# is ignored), asks git for the file list and gets none. One dir per checkout.
BUILD ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/dockyard-registry/build-$(shell printf %s '$(CURDIR)' | md5sum | cut -c1-8)
COLL_ROOT := $(BUILD)/collections
COLL_DIR := $(COLL_ROOT)/ansible_collections/dockyard/registry
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/dist/dockyard-registry-$(VERSION).tar.gz
ANSIBLE_TEST_PY ?= 3.11
COMPILE_PYTHONS ?= 3.8 3.9 3.10 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv

# The installed collection, never the loose checkout, is what playbooks and tests use.
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export ANSIBLE_ROLES_PATH := $(COLL_DIR)/roles
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR ?= 0
export ANSIBLE_NOCOLOR ?= 1
export PY_COLORS ?= 0

.PHONY: help demo test venv engine packages image build install sanity units lint \
        integration molecule clean-containers clean bench bench-tables

help:
	@echo "make demo   set everything up and deploy a TLS + htpasswd registry on localhost"
	@echo "make test   sanity, lint, unit, integration and Molecule tests (what CI runs)"
	@echo "make bench  benchmarks against skopeo (rewrites the README's tables; BENCH_ARGS=--scenarios wan)"
	@echo "make bench-tables  rewrite those tables from benchmarks/results/latest.json"

## ---- set-up steps -------------------------------------------------------------

venv: $(VENV)/.installed
$(VENV)/.installed: requirements/dev.in requirements/constraints.txt
	@echo "==> virtualenv $(VENV) with pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/dev.in -c requirements/constraints.txt
	touch $@

engine:
	@hack/ensure-docker.sh

packages:
	@hack/ensure-packages.sh

image: engine
	@hack/ensure-registry-image.sh registry:2

build: venv
	@rm -rf $(BUILD)/dist
	@$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist >/dev/null
	@echo "==> built $(TARBALL)"

install: build
	@rm -rf $(COLL_DIR)
	@$(BIN)/ansible-galaxy collection install --no-deps --force -p $(COLL_ROOT) $(TARBALL) >/dev/null
	@echo "==> installed dockyard.registry $(VERSION) into $(COLL_ROOT)"

## ---- the demo -----------------------------------------------------------------

demo: venv image install
	@hack/demo.sh

## ---- tests --------------------------------------------------------------------

# Every commit: sanity, units, integration and Molecule on the project's ansible-core (2.19, the
# developers' virtualenv), the docs site, the EE context and the installed tarball's smoke test
# (release-smoke). The version matrix (make matrix, target-pythons, matrix-ends: sanity + units on
# 2.17-2.21, integration + Molecule on the oldest and the newest) builds four more virtualenvs and
# runs the suites again per release: well past the 45-minute budget on this 2-core machine, so it
# runs in make release, before a version is tagged (README: "Supported versions, as tested").
test: sanity lint units integration molecule release-smoke
	@echo "==> make test: all suites passed"

# ansible-test bootstraps pip in its own virtualenvs from a script it downloads from a
# host these machines cannot reach; give it a stand-in in its cache (hack/get_pip_standin.py).
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
ansible-test-cache:
	@mkdir -p $(ANSIBLE_TEST_CACHE)
	@for v in 23_1_2 24_2 24_3 25_0 25_1 25_2 25_3; do \
	  cmp -s hack/get_pip_standin.py $(ANSIBLE_TEST_CACHE)/get_pip_$$v.py || \
	    cp hack/get_pip_standin.py $(ANSIBLE_TEST_CACHE)/get_pip_$$v.py; done

sanity: install ansible-test-cache packages
	@echo "==> ansible-test sanity"
	cd $(COLL_DIR) && $(BIN)/ansible-test sanity --venv --requirements --python $(ANSIBLE_TEST_PY) --color no
	@# Module code runs on managed nodes with older Pythons: compile it with every other
	@# interpreter ansible-core 2.19 supports on targets that this machine has (pyenv).
	@cd $(COLL_DIR) && for v in $(COMPILE_PYTHONS); do 	  d=$$(ls -d $(PYENV_ROOT)/versions/$$v.* 2>/dev/null | tail -n 1); 	  if [ -n "$$d" ]; then PATH=$$d/bin:$$PATH $(BIN)/ansible-test sanity --test compile --venv --python $$v --color no; 	  else echo "==> no Python $$v here: compile check skipped for it"; fi; done

units: install
	@echo "==> ansible-test units"
	cd $(COLL_DIR) && $(BIN)/ansible-test units --local --python $(ANSIBLE_TEST_PY) --color no

lint: install
	@echo "==> ansible-lint"
	cd $(COLL_DIR) && $(BIN)/ansible-lint --offline roles/ playbooks/
	@echo "==> antsibull-changelog lint (changelog fragments)"
	$(BIN)/antsibull-changelog lint

integration: install image packages
	@echo "==> integration tests against real registries"
	@hack/integration.sh

molecule: install image
	@echo "==> Molecule scenarios"
	cd $(CURDIR)/extensions && $(BIN)/molecule test --all

clean-containers:
	@hack/clean-containers.sh

clean: clean-containers
	rm -rf $(BUILD) tests/output

## ---- benchmarks (not tests) ---------------------------------------------------

# BENCH_ARGS: options of benchmarks/run.py, e.g. BENCH_ARGS="--scenarios wan"; at its end it
# rewrites the generated tables of README.md and benchmarks/README.md (see benchmarks/README.md)
bench: venv image install
	@WITH_HYPERFINE=1 hack/ensure-packages.sh
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# the same tables from the last results, without measuring
bench-tables: venv
	$(BIN)/python benchmarks/report.py --update


## ---- documentation site and execution environment ----------------------------
# Separate targets, hooked into lint and test by prerequisite-only rules, so that the recipes
# above stay as they are. The docs and EE tools go into the same virtualenv (docs.in).

DOCS_OUT := $(BUILD)/docs
.PHONY: docs-venv docs docs-lint docs-test ee-test browser

docs-venv: $(VENV)/.docs-installed
$(VENV)/.docs-installed: $(VENV)/.installed requirements/docs.in requirements/docs-constraints.txt requirements/constraints.txt
	@echo "==> documentation and execution-environment tools into $(VENV)"
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/docs.in \
	  -c requirements/constraints.txt -c requirements/docs-constraints.txt
	touch $@

browser:
	@WITH_BROWSER=1 hack/ensure-packages.sh

# The collection's documentation site, rendered offline from the installed collection.
docs: install docs-venv
	@echo "==> documentation site (antsibull-docs + Sphinx)"
	$(BIN)/python hack/build_docs.py $(COLL_DIR) $(DOCS_OUT)

# The rendered site in headless Chromium: pages load offline, links resolve, examples show.
docs-test: docs browser
	@echo "==> documentation site in headless Chromium"
	cd tests/docs && DOCS_SITE=$(DOCS_OUT)/html COLLECTION_DIR=$(COLL_DIR) \
	  $(BIN)/pytest -q -p no:cacheprovider .

docs-lint: install docs-venv
	@echo "==> antsibull-docs lint-collection-docs --plugin-docs"
	cd $(COLL_DIR) && $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

# ansible-builder create with the collection's tarball, and the build's introspection replayed.
ee-test: install docs-venv
	@echo "==> execution environment: ansible-builder create + introspect"
	cd tests/ee && TARBALL=$(TARBALL) COLLECTION_DIR=$(COLL_DIR) $(BIN)/pytest -q -p no:cacheprovider .

lint: docs-lint
test: docs-test ee-test

## ---- ansible-core version matrix and release (issue 14) -----------------------
# hack/matrix.sh makes one virtualenv per ansible-core release under $(MATRIX_DIR) and reuses
# it until its pins change. make matrix: sanity + units on 2.17-2.21. make matrix-ends:
# integration and Molecule on the oldest and the newest. make target-pythons: compile + units
# on every managed-node Python the README claims.
MATRIX_DIR := $(BUILD)/matrix
MATRIX_OLDEST := 2.17
MATRIX_NEWEST := 2.21
export MATRIX_DIR COLL_DIR VENV

.PHONY: matrix-venvs matrix matrix-ends target-pythons release release-smoke changelog-release

matrix-venvs:
	@hack/matrix.sh venvs

matrix: install ansible-test-cache packages
	@hack/matrix.sh check

target-pythons: install ansible-test-cache
	@hack/matrix.sh target-pythons

# The newest release runs the whole integration suite; the oldest one target per module
# (hack/matrix.sh representative-targets lists them). Both run every Molecule scenario.
matrix-ends: install image packages
	@hack/matrix.sh integration $(MATRIX_NEWEST)
	@hack/matrix.sh molecule $(MATRIX_NEWEST)
	@hack/matrix.sh integration $(MATRIX_OLDEST) --representative
	@hack/matrix.sh molecule $(MATRIX_OLDEST)

# The tarball installs into an empty collections path with its dependencies from the installed
# ansible package (offline) and a smoke playbook runs against that copy (hack/release.sh).
RELEASE_DIR := $(BUILD)/release
release-smoke: venv packages
	@RELEASE_DIR=$(RELEASE_DIR) hack/release.sh

# Before tagging a version: the whole version matrix, then the tarball's smoke test.
release: matrix target-pythons matrix-ends release-smoke
	@echo "==> make release: the matrix and the release checks passed"

# Fold the changelog fragments into the release named by galaxy.yml's version (CHANGELOG.md and
# CHANGELOG.rst). --update-existing: re-running it after more fragments were merged adds them to
# the same release instead of failing. Commit the result (fragments are removed).
changelog-release: venv
	$(BIN)/antsibull-changelog release --update-existing
	$(BIN)/antsibull-changelog lint
