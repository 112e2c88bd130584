# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registry_sync (through ansible-playbook) side by side with ``skopeo sync``.

Run with ``make bench`` (it builds and installs the collection, installs skopeo and
hyperfine, then runs ``python benchmarks/run.py``). Not a test: it writes a table to
``benchmarks/results/latest.md`` (and the raw numbers to ``latest.json``).

What it does, in one run:

1. Starts three ``registry:2`` containers on 127.0.0.1 (plain HTTP, labelled
   ``dockyard.test=1``): ``dockyard-bench-src`` (port 5310) and two empty destinations,
   ``dockyard-bench-dst-dockyard`` (5311) for registry_sync and ``dockyard-bench-dst-skopeo``
   (5312) for skopeo, so neither tool finds the other's blobs. Storage is bind-mounted
   under the work directory; access logs are off in all three.
2. Pushes a deterministic corpus with the integration harness's ``corpus.py``. Two
   scenarios, each on freshly started registries, reported side by side:

   * ``base`` (the issue's corpus): N repositories x M tags (24 x 5) whose images share
     two base layers (16 + 4 MiB), one multi-arch index (3 platforms) and one image with
     a large layer (512 MiB by default);
   * ``scale``: 40 repositories x 25 tags of small images (own layers of 32 + 4 KiB)
     on the same two base layers, to show how the no-op ratio depends on the tag count.

   Layers are cached in the work directory, so only the first run pays for generating them.
3. Reads every source blob file once (page cache warm for both tools), then times:
   * cold sync into the empty destinations - one run each;
   * no-op re-sync of the same set - hyperfine, ``--warmup 1 --runs 5`` (3 for ``scale``),
     mean; then three more dockyard runs for the module's own ``duration`` (median);
   * incremental sync after one new tag in the source - one run each.
4. Measures the peak RSS (``VmHWM`` from ``/proc/<pid>/status``, polled every 20 ms) of
   the module process during the cold sync - the AnsiballZ python process running
   registry_sync, which holds the large layer's stream - and of skopeo for comparison.
5. Checks that both destinations hold exactly the source digests for every tag.

The commands timed (``<w>`` is the work directory):

* dockyard: ``ansible-playbook -i localhost, -c local <w>/sync.yml`` where the play has one
  ``dockyard.registry.registry_sync`` task listing the repositories (all tags, default
  ``concurrency: 4``). The whole ansible-playbook process is timed, Ansible's own start-up
  included; the module's ``duration`` is reported as well.
* skopeo 1.9: ``skopeo sync --all --preserve-digests --src yaml --dest docker
  --dest-tls-verify=false <w>/skopeo.yml 127.0.0.1:5312`` where ``skopeo.yml`` lists the
  same repositories under ``127.0.0.1:5310`` with ``tls-verify: false`` and an empty tag list
  (all tags); it writes ``127.0.0.1:5312/<last path component>`` (``bench/app00`` ->
  ``app00``), which the digest check maps back. skopeo's blob-info cache is cleared before the cold run (it would otherwise
  remember blob locations of earlier benchmark runs).

Options: ``--scenarios base,scale``, ``--repos``, ``--tags``, ``--big-mib``, ``--scale-repos``,
``--scale-tags``, ``--noop-runs``, ``--scale-noop-runs``, ``--workdir``, ``--keep`` (leave the
registries of the last scenario running), ``--concurrency``. Containers and registry data are removed at the end
unless ``--keep``; the generated layers stay in ``<w>/corpus-cache`` (about 600 MiB) for the next run.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "harness"))

import requests  # noqa: E402  (after the path set-up, like corpus)
from corpus import Pusher, make_image, make_multiarch  # noqa: E402

SRC_PORT, DOCKYARD_PORT, SKOPEO_PORT = 5310, 5311, 5312
LABEL = "dockyard.test=1"
SKOPEO_CACHE = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
TARGETS = {"cold": 0.6, "noop": 0.4, "rss_mib": 128}


def log(message: str) -> None:
    sys.stderr.write("==> %s\n" % message)
    sys.stderr.flush()


def sh(*argv: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)


# ---- registries -------------------------------------------------------------------------------

def registry_name(port: int) -> str:
    return {SRC_PORT: "dockyard-bench-src", DOCKYARD_PORT: "dockyard-bench-dst-dockyard",
            SKOPEO_PORT: "dockyard-bench-dst-skopeo"}[port]


def start_registry(port: int, workdir: str) -> str:
    name = registry_name(port)
    data = os.path.join(workdir, "data", name)
    sh("docker", "rm", "-f", name, check=False)
    if os.path.isdir(data) and port != SRC_PORT:
        shutil.rmtree(data)
    os.makedirs(data, exist_ok=True)
    sh("docker", "run", "-d", "--name", name, "--label", LABEL, "-p", "127.0.0.1:%d:5000" % port,
       "-v", "%s:/var/lib/registry" % data,
       "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true",
       "-e", "REGISTRY_LOG_LEVEL=warn", "-e", "REGISTRY_LOG_ACCESSLOG_DISABLED=true",
       "registry:2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get("http://127.0.0.1:%d/v2/" % port, timeout=2).status_code == 200:
                return data
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("registry %s did not answer on port %d" % (name, port))


def stop_registries(workdir: str, purge: bool) -> None:
    for port in (SRC_PORT, DOCKYARD_PORT, SKOPEO_PORT):
        sh("docker", "rm", "-f", registry_name(port), check=False)
    if purge:
        # the source is rebuilt on every run; only the layer cache is kept between runs
        for port in (SRC_PORT, DOCKYARD_PORT, SKOPEO_PORT):
            shutil.rmtree(os.path.join(workdir, "data", registry_name(port)), ignore_errors=True)


def warm_page_cache(path: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(base, name), "rb") as handle:
                while True:
                    chunk = handle.read(8 * 1024 * 1024)
                    if not chunk:
                        break
                    total += len(chunk)
    return total


# ---- corpus ------------------------------------------------------------------------------------

SCENARIOS = {
    # the corpus of the issue: shared base layers, a multi-arch index, one large layer
    "base": {"prefix": "bench", "layers": [512 * 1024, 64 * 1024], "extras": True},
    # many small tags sharing the same base layers: how the no-op run scales with the tag count
    "scale": {"prefix": "scale", "layers": [32 * 1024, 4 * 1024], "extras": False},
}
BASE = dict(base_seed=7, base_layers=[16 * 1024 * 1024, 4 * 1024 * 1024])


def repo_names(scenario: str, repos: int) -> list:
    prefix = SCENARIOS[scenario]["prefix"]
    names = ["%s/app%02d" % (prefix, i) for i in range(repos)]
    if SCENARIOS[scenario]["extras"]:
        names += ["%s/multi" % prefix, "%s/big" % prefix]
    return names


def push_corpus(scenario: str, repos: int, tags: int, big_mib: int, cache_dir: str) -> dict:
    spec = SCENARIOS[scenario]
    prefix = spec["prefix"]
    pusher = Pusher("http://127.0.0.1:%d" % SRC_PORT)
    # the shared base layers first (generated once, then cached), then one repository per worker
    pusher.push(make_image(seed=1000, layers=spec["layers"], cache_dir=cache_dir, **BASE), "%s/app00" % prefix,
                ["1.0.0"])

    def push_repo(i: int) -> int:
        own = Pusher("http://127.0.0.1:%d" % SRC_PORT)
        own._known.update(pusher._known)  # pylint: disable=protected-access  # mount the base layers
        for j in range(tags):
            image = make_image(seed=1000 + i * 100 + j, layers=spec["layers"], cache_dir=cache_dir, **BASE)
            own.push(image, "%s/app%02d" % (prefix, i), ["1.%d.0" % j])
        return tags

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = sum(pool.map(push_repo, range(repos)))
    if not spec["extras"]:
        return {"images": images}
    index = make_multiarch(seed=50, layers=[2 * 1024 * 1024], platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"),
                           cache_dir=cache_dir, **BASE)
    pusher.push(index, "%s/multi" % prefix, ["latest"])
    log("generating/pushing the %d MiB layer (cached after the first run)" % big_mib)
    big = make_image(seed=99, layers=[big_mib * 1024 * 1024], cache_dir=cache_dir, **BASE)
    pusher.push(big, "%s/big" % prefix, ["1.0"])
    return {"images": images + 2, "index_digest": index.manifest.digest, "big_digest": big.manifest.digest}


def push_new_tag(scenario: str, cache_dir: str) -> None:
    spec = SCENARIOS[scenario]
    image = make_image(seed=4242, layers=spec["layers"], cache_dir=cache_dir, **BASE)
    Pusher("http://127.0.0.1:%d" % SRC_PORT).push(image, "%s/app00" % spec["prefix"], ["2.0.0"])


# ---- the two tools ----------------------------------------------------------------------------

def write_inputs(workdir: str, repos: list, concurrency: int) -> tuple:
    playbook = os.path.join(workdir, "sync.yml")
    with open(playbook, "w") as handle:
        json.dump([{
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [{
                "name": "registry_sync",
                "dockyard.registry.registry_sync": {
                    "source_registry": "http://127.0.0.1:%d" % SRC_PORT,
                    "destination_registry": "http://127.0.0.1:%d" % DOCKYARD_PORT,
                    "repositories": repos,
                    "concurrency": concurrency,
                },
            }],
        }], handle, indent=1)
    skopeo_yaml = os.path.join(workdir, "skopeo.yml")
    with open(skopeo_yaml, "w") as handle:
        handle.write("127.0.0.1:%d:\n  tls-verify: false\n  images:\n" % SRC_PORT)
        for repo in repos:
            handle.write("    %s: []\n" % repo)
    dockyard = ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook]
    skopeo = ["skopeo", "sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker",
              "--dest-tls-verify=false", skopeo_yaml, "127.0.0.1:%d" % SKOPEO_PORT]
    return dockyard, skopeo


class PeakRss:
    """Polls /proc for processes whose command line contains ``marker``; keeps the max VmHWM."""

    def __init__(self, marker: str) -> None:
        self.marker = marker.encode()
        self.peak_kib = 0
        self.pids = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        if self.marker not in handle.read():
                            continue
                    with open("/proc/%s/status" % pid) as handle:
                        for line in handle:
                            if line.startswith("VmHWM:"):
                                self.pids.add(pid)
                                self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                except OSError:
                    continue
            self._stop.wait(0.02)


def timed(argv: list, env: dict, marker: str | None = None) -> dict:
    started = time.monotonic()
    if marker:
        with PeakRss(marker) as rss:
            proc = subprocess.run(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  check=False)
        peak = rss.peak_kib / 1024.0
    else:
        proc = subprocess.run(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        peak = None
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit("%s failed (exit %d)" % (argv[0], proc.returncode))
    return {"seconds": elapsed, "peak_rss_mib": peak, "stdout": proc.stdout}


def module_result(measurement: dict) -> dict:
    """registry_sync's own result, from the ansible.posix.json callback's output."""
    output = json.loads(measurement.pop("stdout"))
    result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    summary = dict((k, result.get(k)) for k in ("duration", "bytes_copied", "blobs_uploaded", "blobs_mounted",
                                                "blobs_skipped", "changed"))
    summary.update(copied=len(result.get("copied", [])), skipped=len(result.get("skipped_images", [])),
                   failed=len(result.get("failed_images", [])))
    return summary


def hyperfine(commands: dict, env: dict, workdir: str, runs: int) -> dict:
    export = os.path.join(workdir, "hyperfine.json")
    argv = ["hyperfine", "--warmup", "1", "--runs", str(runs), "--export-json", export, "--style", "basic"]
    for name, command in commands.items():
        argv += ["--command-name", name, " ".join(_quote(c) for c in command)]
    subprocess.run(argv, env=env, check=True, stdout=sys.stderr)
    with open(export) as handle:
        data = json.load(handle)
    return dict((r["command"], {"seconds": r["mean"], "stddev": r["stddev"], "min": r["min"], "max": r["max"]})
                for r in data["results"])


def _quote(text: str) -> str:
    import shlex  # pylint: disable=import-outside-toplevel
    return shlex.quote(text)


# ---- checks ------------------------------------------------------------------------------------

def digests(port: int, repos: list, rename=lambda repo: repo) -> dict:
    """``{"<source repo>:<tag>": digest}`` of a registry holding ``rename(repo)`` for each repo."""
    session = requests.Session()
    found = {}
    for repo in repos:
        name = rename(repo)
        answer = session.get("http://127.0.0.1:%d/v2/%s/tags/list" % (port, name), timeout=30)
        if answer.status_code == 404:
            continue
        answer.raise_for_status()
        for tag in answer.json().get("tags") or []:
            head = session.head("http://127.0.0.1:%d/v2/%s/manifests/%s" % (port, name, tag),
                                headers={"Accept": ACCEPT}, timeout=30)
            head.raise_for_status()
            found["%s:%s" % (repo, tag)] = head.headers.get("Docker-Content-Digest")
    return found


def skopeo_layout(repo: str) -> str:
    """skopeo sync from a YAML source writes <destination>/<last path component>."""
    return repo.rsplit("/", 1)[-1]


def compare(repos: list) -> dict:
    source = digests(SRC_PORT, repos)
    result = {"tags": len(source)}
    for name, port, rename in (("dockyard", DOCKYARD_PORT, lambda r: r), ("skopeo", SKOPEO_PORT, skopeo_layout)):
        dest = digests(port, repos, rename)
        result[name] = {
            "missing": sorted(set(source) - set(dest)),
            "different": sorted(k for k in source if k in dest and dest[k] != source[k]),
            "extra": sorted(set(dest) - set(source)),
        }
    return result


# ---- report ------------------------------------------------------------------------------------

def verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "MISSED"


def scenario_table(name: str, data: dict) -> list:
    rows = []
    for key, label in (("cold", "cold sync into an empty registry"), ("noop", "no-op re-sync"),
                       ("incremental", "incremental (one new tag)")):
        ours, theirs = data[key]["dockyard"]["seconds"], data[key]["skopeo"]["seconds"]
        ratio = ours / theirs
        target = TARGETS.get(key)
        module = data[key].get("module", {}).get("duration")
        module_ratio = ("%.2f" % (module / theirs)) if module is not None else "-"
        if target:
            module_verdict = verdict(module / theirs, target) if module is not None else "-"
            goal = "<= %.1f: end to end %s, module %s" % (target, verdict(ratio, target), module_verdict)
        else:
            goal = "-"
        rows.append("| %s | %.2f s | %s | %.2f s | %.2f | %s | %s |" % (
            label, ours, ("%.2f s" % module) if module is not None else "-", theirs, ratio, module_ratio, goal))
    rss = data["cold"]["dockyard"]["peak_rss_mib"]
    skopeo_rss = data["cold"]["skopeo"]["peak_rss_mib"]
    check = data["digests"]
    ok = all(not check[t][k] for t in ("dockyard", "skopeo") for k in ("missing", "different", "extra"))
    corpus = data["corpus"]
    if SCENARIOS[name]["extras"]:
        what = ("%d repositories x %d tags sharing 2 base layers (16 + 4 MiB), a 3-platform index, one image with a "
                "%d MiB layer" % (corpus["repos"], corpus["tags"], corpus["big_mib"]))
    else:
        what = ("%d repositories x %d tags of small images (2 own layers of 32 + 4 KiB) sharing 2 base layers "
                "(16 + 4 MiB)" % (corpus["repos"], corpus["tags"]))
    lines = [
        "## scenario `%s`: %s; %d tags, %.0f MiB of blobs" % (name, what, check["tags"], corpus["source_mib"]),
        "",
        "| scenario | dockyard (ansible-playbook, wall) | of which the module | skopeo sync | ratio (wall) "
        "| ratio (module) | target |",
        "|---|---|---|---|---|---|---|",
    ] + rows + [
        "| peak RSS during the cold sync | %.1f MiB | | %.1f MiB | | | <= 128 MiB: %s |"
        % (rss, skopeo_rss, "met" if rss <= TARGETS["rss_mib"] else "MISSED"),
        "",
        "Digests: %s (%d tags compared with the source on both destinations)."
        % ("identical on both sides" if ok else "DIFFERENCES: %s" % json.dumps(check), check["tags"]),
        "No-op: hyperfine mean of %d runs after a warm-up (stddev %.2f s / %.2f s). Load average (1 min) at the "
        "start / after cold / after no-op / at the end: %s."
        % (data["noop_runs"], data["noop"]["dockyard"].get("stddev", 0), data["noop"]["skopeo"].get("stddev", 0),
           " / ".join(data["load"])),
        "Cold-sync engine counters: %s." % json.dumps(data["cold"]["module"]),
        "",
    ]
    return lines


def write_report(path: str, data: dict) -> str:
    lines = [
        "# registry_sync vs skopeo sync",
        "",
        "%s; %d CPU cores; skopeo %s; ansible-core %s. Cold and incremental: one run each. The dockyard column is "
        "the whole `ansible-playbook` process (Ansible start-up included); the module column is registry_sync's own "
        "`duration`, and the module ratio divides it by skopeo's whole run."
        % (data["when"], os.cpu_count() or 0, data["skopeo_version"], data["ansible_version"]),
        "",
    ]
    for name, scenario in data["scenarios"].items():
        lines += scenario_table(name, scenario)
    text = "\n".join(lines)
    with open(path, "w") as handle:
        handle.write(text)
    return text


def loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return handle.read().split()[0]


def run_scenario(name: str, args, repos_n: int, tags_n: int, noop_runs: int, cache_dir: str, env: dict) -> dict:
    data = {"noop_runs": noop_runs, "load": [loadavg()]}
    log("[%s] starting registries on 127.0.0.1:%d (source), :%d (registry_sync), :%d (skopeo)"
        % (name, SRC_PORT, DOCKYARD_PORT, SKOPEO_PORT))
    src_data = start_registry(SRC_PORT, args.workdir)
    # the source is rebuilt for every scenario so the incremental tag is new each time
    shutil.rmtree(src_data)
    src_data = start_registry(SRC_PORT, args.workdir)
    start_registry(DOCKYARD_PORT, args.workdir)
    start_registry(SKOPEO_PORT, args.workdir)
    log("[%s] pushing the corpus" % name)
    corpus = push_corpus(name, repos_n, tags_n, args.big_mib, cache_dir)
    repos = repo_names(name, repos_n)
    dockyard_cmd, skopeo_cmd = write_inputs(args.workdir, repos, args.concurrency)
    source_bytes = warm_page_cache(src_data)
    data["corpus"] = dict(corpus, repos=repos_n, tags=tags_n, big_mib=args.big_mib,
                          source_mib=source_bytes / 1048576.0)

    log("[%s] cold sync: registry_sync" % name)
    data["cold"] = {"dockyard": timed(dockyard_cmd, env, "AnsiballZ_registry_sync")}
    data["cold"]["module"] = module_result(data["cold"]["dockyard"])
    log("[%s] cold sync: skopeo" % name)
    if os.path.exists(SKOPEO_CACHE):
        os.remove(SKOPEO_CACHE)
    warm_page_cache(src_data)
    data["cold"]["skopeo"] = timed(skopeo_cmd, env, "skopeo")
    data["cold"]["skopeo"].pop("stdout")
    data["load"].append(loadavg())

    log("[%s] no-op re-sync (hyperfine)" % name)
    noop = hyperfine({"dockyard": dockyard_cmd, "skopeo": skopeo_cmd}, env, args.workdir, noop_runs)
    # a few more (untimed by hyperfine) runs for the module's own view of a no-op: the median
    durations = sorted((module_result(timed(dockyard_cmd, env)) for _run in range(3)), key=lambda r: r["duration"])
    data["noop"] = {"dockyard": noop["dockyard"], "skopeo": noop["skopeo"], "module": durations[1],
                    "module_runs": [r["duration"] for r in durations]}
    data["load"].append(loadavg())

    log("[%s] incremental: one new tag" % name)
    push_new_tag(name, cache_dir)
    data["incremental"] = {"dockyard": timed(dockyard_cmd, env)}
    data["incremental"]["module"] = module_result(data["incremental"]["dockyard"])
    data["incremental"]["skopeo"] = timed(skopeo_cmd, env)
    data["incremental"]["skopeo"].pop("stdout")

    log("[%s] comparing digests" % name)
    data["digests"] = compare(repos)
    data["load"].append(loadavg())
    return data


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--scenarios", default="base,scale", help="comma-separated: base, scale")
    parser.add_argument("--repos", type=int, default=24)
    parser.add_argument("--tags", type=int, default=5)
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--scale-repos", type=int, default=40)
    parser.add_argument("--scale-tags", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--scale-noop-runs", type=int, default=3)
    parser.add_argument("--workdir", default=os.environ.get("DOCKYARD_BENCH_DIR", "/var/tmp/dockyard-bench"))
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--keep", action="store_true", help="leave the registries running")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error("unknown scenario %r (known: %s)" % (name, ", ".join(SCENARIOS)))

    for tool in ("docker", "skopeo", "hyperfine", "ansible-playbook"):
        if shutil.which(tool) is None:
            raise SystemExit("%s is needed (make bench installs skopeo and hyperfine)" % tool)
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    cache_dir = os.path.join(args.workdir, "corpus-cache")
    os.makedirs(cache_dir, exist_ok=True)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")

    data = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "skopeo_version": sh("skopeo", "--version").stdout.split()[-1],
            "ansible_version": sh("ansible", "--version").stdout.splitlines()[0].split()[-1].rstrip("]"),
            "machine": platform.platform(), "scenarios": {}}
    # The integration harness (hack/integration.sh) removes every dockyard.test=1 container
    # when it starts in CI mode, ours included: share its lock so neither pulls the other's
    # registries away in the middle of a run.
    lock = open(os.environ.get("DOCKYARD_IT_LOCK", "/tmp/dockyard-it.lock"), "a")  # pylint: disable=consider-using-with
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log("an integration run holds %s; waiting for it" % lock.name)
        fcntl.flock(lock, fcntl.LOCK_EX)
    text = ""
    try:
        for name in scenarios:
            if name == "base":
                data["scenarios"][name] = run_scenario(name, args, args.repos, args.tags, args.noop_runs,
                                                       cache_dir, env)
            else:
                data["scenarios"][name] = run_scenario(name, args, args.scale_repos, args.scale_tags,
                                                       args.scale_noop_runs, cache_dir, env)
            # written after every scenario, so an interrupted run keeps what it measured
            with open(os.path.join(args.results, "latest.json"), "w") as handle:
                json.dump(data, handle, indent=2)
            text = write_report(os.path.join(args.results, "latest.md"), data)
    finally:
        if not args.keep:
            stop_registries(args.workdir, purge=True)
        lock.close()
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
