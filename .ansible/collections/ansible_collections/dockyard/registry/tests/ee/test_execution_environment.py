"""The collection in an execution environment (make ee-test).

``ansible-builder create`` writes the build context for tests/ee/execution-environment.yml with
the collection's tarball (TARBALL, from make build). Building the image needs its base image and
Ansible Galaxy, which this machine cannot reach; so the test then replays the two build stages
that decide what goes into the image, with the very files of the context: the galaxy stage
(``ansible-galaxy collection install -r _build/requirements.yml``, the dependencies taken from the
installed ``ansible`` package instead of Galaxy) and the builder stage's
``_build/scripts/introspect.py introspect``, whose output the image's pip and bindep installs get.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml
from bindep.depends import Depends
from packaging.requirements import Requirement

HERE = os.path.dirname(os.path.abspath(__file__))
TARBALL = os.environ.get("TARBALL", "")
COLLECTION = os.environ.get("COLLECTION_DIR", "")
BIN = os.path.dirname(sys.executable)


def run(cmd: list[str], cwd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def entries(path: str) -> list[str]:
    """The lines of a requirements or bindep file, without comments."""
    with open(path, encoding="utf-8") as f:
        lines = (line.split(" #", 1)[0].strip() for line in f if not line.startswith("#"))
        return [line for line in lines if line]


def ansible_package_collections() -> str:
    import ansible_collections  # pylint: disable=import-outside-toplevel

    return list(ansible_collections.__path__)[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not os.path.isfile(TARBALL):
        pytest.fail("TARBALL=%r is no file: run make build first" % TARBALL)
    work = str(tmp_path_factory.mktemp("ee"))
    shutil.copy(os.path.join(HERE, "execution-environment.yml"), work)
    shutil.copy(TARBALL, os.path.join(work, "dockyard-registry.tar.gz"))
    run([os.path.join(BIN, "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
         "--output-filename", "Containerfile"], cwd=work)
    context = os.path.join(work, "context")

    # The galaxy stage, from the context's requirements.yml; the tarball's path in the image is
    # where the definition's COPY puts it.
    with open(os.path.join(context, "_build", "requirements.yml"), encoding="utf-8") as f:
        requirements = yaml.safe_load(f)
    collections = os.path.join(work, "collections")
    # --force: the same version is already installed where ANSIBLE_COLLECTIONS_PATH points (make install).
    for entry in requirements["collections"]:
        local = entry["name"].replace("/tmp/dockyard/", os.path.join(context, "_build", "dockyard") + "/")
        run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", collections, local],
            cwd=work)
    # Galaxy would bring the dependencies: take the same collections from the ansible package.
    source = ansible_package_collections()
    todo = [os.path.join(collections, "ansible_collections", "dockyard", "registry")]
    while todo:
        with open(os.path.join(todo.pop(), "MANIFEST.json"), encoding="utf-8") as f:
            deps = json.load(f)["collection_info"]["dependencies"]
        for name in deps:
            ns, coll = name.split(".")
            dest = os.path.join(collections, "ansible_collections", ns, coll)
            if not os.path.isdir(dest):
                shutil.copytree(os.path.join(source, ns, coll), dest)
                todo.append(dest)

    # The builder stage's introspection, with the script the context carries.
    run([sys.executable, os.path.join(context, "_build", "scripts", "introspect.py"), "introspect",
         "--write-pip", os.path.join(work, "pip.txt"), "--write-bindep", os.path.join(work, "bindep.txt"),
         collections], cwd=work)
    with open(os.path.join(work, "pip.txt"), encoding="utf-8") as f:
        pip = f.read().splitlines()
    with open(os.path.join(work, "bindep.txt"), encoding="utf-8") as f:
        bindep = f.read().splitlines()
    with open(os.path.join(context, "Containerfile"), encoding="utf-8") as f:
        containerfile = f.read()
    return {"context": context, "requirements": requirements, "pip": pip, "bindep": bindep,
            "containerfile": containerfile}


def test_context_carries_the_tarball_and_installs_it(built: dict[str, Any]) -> None:
    assert filecmp.cmp(os.path.join(built["context"], "_build", "dockyard", "dockyard-registry.tar.gz"), TARBALL,
                       shallow=False)
    assert built["requirements"]["collections"] == [{"name": "/tmp/dockyard/dockyard-registry.tar.gz", "type": "file"}]
    containerfile = built["containerfile"]
    assert "COPY _build/dockyard/ /tmp/dockyard/" in containerfile
    # The copy comes before the galaxy install, and the introspection after it.
    assert containerfile.index("COPY _build/dockyard/") < containerfile.index("ansible-galaxy collection install")
    assert "introspect.py introspect" in containerfile


def test_meta_execution_environment_names_the_files() -> None:
    with open(os.path.join(COLLECTION, "meta", "execution-environment.yml"), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}


def test_image_gets_our_python_requirements(built: dict[str, Any]) -> None:
    ours = entries(os.path.join(COLLECTION, "requirements.txt"))
    assert {Requirement(r).name for r in ours} >= {"bcrypt", "boto3", "docker", "requests", "cryptography"}
    for requirement in ours:
        assert "%s  # from collection dockyard.registry" % requirement in built["pip"]
    # and the dependencies' own, as Galaxy would have brought them
    assert any(line.endswith("# from collection community.docker") for line in built["pip"])


def test_image_gets_our_system_requirements(built: dict[str, Any]) -> None:
    ours = entries(os.path.join(COLLECTION, "bindep.txt"))
    for requirement in ours:
        assert "%s  # from collection dockyard.registry" % requirement in built["bindep"]
    depends = Depends("\n".join(ours) + "\n")
    rpm_runtime = {rule[0] for rule in depends.active_rules(["platform:rpm"])}
    rpm_compile = {rule[0] for rule in depends.active_rules(["platform:rpm", "compile"])}
    assert rpm_runtime == {"ca-certificates"}
    assert {"gcc", "openssl-devel", "libffi-devel", "python3-devel", "rust", "cargo"} <= rpm_compile


def test_skopeo_is_not_needed(built: dict[str, Any]) -> None:
    assert not [line for line in built["bindep"] + built["pip"] if "skopeo" in line and "dockyard.registry" in line]
