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
        integration molecule clean-containers clean bench

help:
	@echo "make demo   set everything up and deploy a TLS + htpasswd registry on localhost"
	@echo "make test   sanity, lint, unit, integration and Molecule tests (what CI runs)"
	@echo "make bench  benchmarks against skopeo (tables for the README)"

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

test: sanity lint units integration molecule
	@echo "==> make test: all suites passed"

# ansible-test bootstraps pip in its own virtualenvs from a script it downloads from a
# host these machines cannot reach; give it a stand-in in its cache (hack/get_pip_standin.py).
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
ansible-test-cache:
	@mkdir -p $(ANSIBLE_TEST_CACHE)
	@for v in 24_2 24_3 25_0 25_1 25_2 25_3; do \
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

bench: venv image install
	@WITH_HYPERFINE=1 hack/ensure-packages.sh
	$(BIN)/python benchmarks/run.py


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
