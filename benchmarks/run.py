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
2. Pushes a deterministic corpus with the integration harness's ``corpus.py``. Scenarios
   (``--scenarios``, default all), each on freshly started registries:

   * ``base`` (the issue's corpus): N repositories x M tags (24 x 5) whose images share
     two base layers (16 + 4 MiB), one multi-arch index (3 platforms) and one image with
     a large layer (512 MiB by default);
   * ``scale``: 40 repositories x 25 tags of small images (own layers of 32 + 4 KiB)
     on the same two base layers, to show how the no-op ratio depends on the tag count;
   * ``wan``: 12 x 5 small images and the index, both tools through
     ``benchmarks/latency_proxy.py`` (25 ms each way, one more round trip per connection);
   * ``scaling``: cold and no-op for 100, 1,000 and 5,000 tiny images (``--scaling``);
   * ``rss``: one image with a 1 GiB layer (``--rss-mib``), cold, for the peak RSS.

   Layers are cached in the work directory, so only the first run pays for generating them.
3. Reads every source blob file once (page cache warm for both tools), then times:
   * cold sync into the empty destinations - one run each;
   * no-op re-sync of the same set - hyperfine, ``--warmup 1 --runs 5`` (3 for ``scale``),
     mean; then three more dockyard runs for the module's own ``duration`` (median);
   * incremental sync after one new tag in the source - one run each.
4. Measures the peak RSS (``VmHWM`` from ``/proc/<pid>/status``, polled every 50 ms; new
   processes looked for every 250 ms) of the module process during the cold sync - the
   AnsiballZ python process running registry_sync, which holds the large layer's stream - and
   of skopeo for comparison.
5. Measures the CPU each cold, no-op (the extra runs) and incremental command cost: each registry
   container's cgroup CPU (cgroup v1 ``cpuacct.usage`` or v2 ``cpu.stat``), the ``docker-proxy``
   processes that carry 127.0.0.1:<port> into the containers, and the tool's own process tree
   (``getrusage(RUSAGE_CHILDREN)`` around the command: ansible-playbook with its workers and the
   module, or skopeo). On loopback a cold copy is bound by CPU: the registries' CPU divided by
   the cores is a floor no client can go under for these requests (the report prints it).
6. Checks that both destinations hold exactly the source digests for every tag.

The commands timed (``<w>`` is the work directory):

* dockyard: ``ansible-playbook -i localhost, -c local <w>/sync.yml`` where the play has one
  ``dockyard.registry.registry_sync`` task listing the repositories (all tags, the module's
  default settings unless ``--concurrency``). The whole ansible-playbook process is timed,
  Ansible's own start-up included; the module's ``duration`` is reported as well.
* skopeo 1.9: ``skopeo sync --all --preserve-digests --src yaml --dest docker
  --dest-tls-verify=false <w>/skopeo.yml 127.0.0.1:5312`` where ``skopeo.yml`` lists the
  same repositories under ``127.0.0.1:5310`` with ``tls-verify: false`` and an empty tag list
  (all tags); it writes ``127.0.0.1:5312/<last path component>`` (``bench/app00`` ->
  ``app00``), which the digest check maps back. skopeo's blob-info cache is cleared before the cold run (it would otherwise
  remember blob locations of earlier benchmark runs).

Results: ``benchmarks/results/latest.json`` (merged: a scenario not run this time keeps its last
measurement and date; ``--fresh`` forgets them) and ``latest.md``, both rewritten after every
scenario; at the end the generated blocks of ``README.md`` (summary) and ``benchmarks/README.md``
(full report) are rewritten from the JSON by ``benchmarks/report.py`` (``--no-docs``: not).

Options: ``--scenarios base,scale,wan,scaling,rss``, ``--repos``, ``--tags``, ``--big-mib``,
``--scale-repos``, ``--scale-tags``, ``--wan-repos``, ``--wan-tags``, ``--delay``, ``--scaling``,
``--rss-mib``, ``--noop-runs``, ``--scale-noop-runs``, ``--workdir``, ``--keep`` (leave the
registries of the last scenario running), ``--concurrency``, ``--fresh``, ``--no-docs``.
Containers and registry data are removed at the end unless ``--keep``; the generated layers stay
in ``<w>/corpus-cache`` (about 1.6 GiB with the rss layer) for the next run.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import resource
import shutil
import signal
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

import report  # noqa: E402  (benchmarks/report.py: the tables)

SRC_PORT, DOCKYARD_PORT, SKOPEO_PORT = 5310, 5311, 5312
# the wan scenario's latency proxy (benchmarks/latency_proxy.py): listen port -> registry port
PROXY_ROUTES = {5320: SRC_PORT, 5321: DOCKYARD_PORT, 5322: SKOPEO_PORT}
PROXY_CONTROL = 5329
PROXY_OF = dict((target, listen) for listen, target in PROXY_ROUTES.items())
LABEL = "dockyard.test=1"
SKOPEO_CACHE = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


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
                CPU_SOURCES[port] = cpu_sources(name, port)
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


# ---- CPU accounting: the floor of a CPU-bound copy ---------------------------------------------
#
# On loopback a cold copy is bound by CPU, not by the network: both registries and the tool share
# the machine's cores. What the registries spend serving a tool's requests is a floor that tool
# cannot go under (its requests are the minimal set: one GET per blob on the source, POST + PUT per
# new blob on the destination). Measured per command: each registry container's cgroup CPU (user +
# system), the docker-proxy processes that carry 127.0.0.1:<port> into the containers, and the
# tool's own process tree (getrusage of the finished child: ansible-playbook with its workers and
# the module, or skopeo).

CPU_SOURCES: dict = {}  # port -> (cgroup CPU file or None, docker-proxy pids)
# the wan scenario's latency proxy while it runs: part of the simulated network both tools pay for
LATENCY_PROXY_PIDS: list = []


def _cgroup_cpu_file(pid: str) -> str | None:
    """The file that counts a container's CPU: cgroup v2 ``cpu.stat`` or v1 ``cpuacct.usage``."""
    try:
        with open("/proc/%s/cgroup" % pid) as handle:
            lines = [line.rstrip("\n").split(":", 2) for line in handle]
    except OSError:
        return None
    for _id, controllers, path in lines:
        if "cpuacct" in controllers.split(","):
            for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                candidate = "/sys/fs/cgroup/%s%s/cpuacct.usage" % (mount, path)
                if os.path.exists(candidate):
                    return candidate
    for _id, controllers, path in lines:
        if controllers == "" and os.path.exists("/sys/fs/cgroup%s/cpu.stat" % path):
            return "/sys/fs/cgroup%s/cpu.stat" % path
    return None


def _proxy_pids(port: int) -> list:
    """The docker-proxy processes publishing ``port`` (userland proxy: loopback traffic goes through it)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"docker-proxy") and b"-host-port" in argv[:-1] \
                and argv[argv.index(b"-host-port") + 1] == str(port).encode():
            pids.append(pid)
    return pids


def cpu_sources(name: str, port: int) -> tuple:
    pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", name, check=False).stdout.strip()
    return _cgroup_cpu_file(pid) if pid.isdigit() else None, _proxy_pids(port)


def _process_cpu(pid: str) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        with open("/proc/%s/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def registry_cpu(port: int) -> tuple:
    """(container CPU seconds or None when not measurable here, docker-proxy CPU seconds) of a registry."""
    path, pids = CPU_SOURCES.get(port, (None, []))
    container = None
    if path:
        try:
            with open(path) as handle:
                text = handle.read()
            if path.endswith("cpu.stat"):
                container = int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6
            else:
                container = int(text) / 1e9
        except (OSError, ValueError, KeyError):
            container = None
    return container, sum(_process_cpu(pid) for pid in pids)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_delta(before: dict, after: dict) -> dict:
    """CPU seconds spent between two ``cpu_snapshot``s: source, destination, docker-proxy, tool, machine."""
    result = {}
    for side in ("source", "destination"):
        was, now = before[side], after[side]
        result[side] = round(now[0] - was[0], 2) if now[0] is not None and was[0] is not None else None
    result["docker_proxy"] = round(sum(after[side][1] - before[side][1] for side in ("source", "destination")), 2)
    result["tool"] = round(after["tool"] - before["tool"], 2)
    if "latency_proxy" in before and "latency_proxy" in after:
        result["latency_proxy"] = round(after["latency_proxy"] - before["latency_proxy"], 2)
    # everything the machine did meanwhile, this copy and any other load: the cores' busy time
    result["machine"] = round(after["machine"] - before["machine"], 2)
    return result


def machine_busy() -> float:
    """CPU seconds the whole machine was busy (every core, every process: /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    busy = sum(fields[:8]) - idle                              # user nice system idle iowait irq softirq steal
    return busy / float(os.sysconf("SC_CLK_TCK"))


def cpu_snapshot(port: int) -> dict:
    snapshot = {"source": registry_cpu(SRC_PORT), "destination": registry_cpu(port), "tool": children_cpu(),
                "machine": machine_busy()}
    if LATENCY_PROXY_PIDS:
        snapshot["latency_proxy"] = sum(_process_cpu(str(pid)) for pid in LATENCY_PROXY_PIDS)
    return snapshot


# ---- corpus ------------------------------------------------------------------------------------

SCENARIOS = {
    # the corpus of the issue: shared base layers, a multi-arch index, one large layer
    "base": {"prefix": "bench", "layers": [512 * 1024, 64 * 1024], "extras": True},
    # many small tags sharing the same base layers: how the no-op run scales with the tag count
    "scale": {"prefix": "scale", "layers": [32 * 1024, 4 * 1024], "extras": False},
    # small images with the shared base layers and the index, behind the latency proxy
    "wan": {"prefix": "wan", "layers": [32 * 1024, 4 * 1024], "extras": True, "big": False},
}
# the extra runs: the scaling table and the peak-RSS row with a 1 GiB layer
EXTRAS = ("scaling", "rss")
BASE = dict(base_seed=7, base_layers=[16 * 1024 * 1024, 4 * 1024 * 1024])
# the scaling table: 100 tags per repository, images of a config and one 1 KiB layer (no base
# layers), so that 5,000 tags stay affordable for both tools
SCALING_TAGS_PER_REPO = 100
SCALING_LAYERS = [1024]


def repo_names(scenario: str, repos: int) -> list:
    prefix = SCENARIOS[scenario]["prefix"]
    names = ["%s/app%02d" % (prefix, i) for i in range(repos)]
    if SCENARIOS[scenario]["extras"]:
        names += ["%s/multi" % prefix]
        if SCENARIOS[scenario].get("big", True):
            names += ["%s/big" % prefix]
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
    if not spec.get("big", True):
        return {"images": images + 1, "index_digest": index.manifest.digest}
    log("generating/pushing the %d MiB layer (cached after the first run)" % big_mib)
    big = make_image(seed=99, layers=[big_mib * 1024 * 1024], cache_dir=cache_dir, **BASE)
    pusher.push(big, "%s/big" % prefix, ["1.0"])
    return {"images": images + 2, "index_digest": index.manifest.digest, "big_digest": big.manifest.digest}


def push_new_tag(scenario: str, cache_dir: str) -> None:
    spec = SCENARIOS[scenario]
    image = make_image(seed=4242, layers=spec["layers"], cache_dir=cache_dir, **BASE)
    Pusher("http://127.0.0.1:%d" % SRC_PORT).push(image, "%s/app00" % spec["prefix"], ["2.0.0"])


# ---- the two tools ----------------------------------------------------------------------------

def write_inputs(workdir: str, repos: list, concurrency: int | None, wan: bool = False) -> tuple:
    """The two commands; ``concurrency`` None leaves the module's default; ``wan`` points both
    tools at the latency proxy's ports."""
    port = (lambda p: PROXY_OF[p]) if wan else (lambda p: p)
    options = {
        "source_registry": "http://127.0.0.1:%d" % port(SRC_PORT),
        "destination_registry": "http://127.0.0.1:%d" % port(DOCKYARD_PORT),
        "repositories": repos,
    }
    if concurrency:
        options["concurrency"] = concurrency
    playbook = os.path.join(workdir, "sync.yml")
    with open(playbook, "w") as handle:
        json.dump([{
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [{"name": "registry_sync", "dockyard.registry.registry_sync": options}],
        }], handle, indent=1)
    skopeo_yaml = os.path.join(workdir, "skopeo.yml")
    with open(skopeo_yaml, "w") as handle:
        handle.write("127.0.0.1:%d:\n  tls-verify: false\n  images:\n" % port(SRC_PORT))
        for repo in repos:
            handle.write("    %s: []\n" % repo)
    dockyard = ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook]
    skopeo = ["skopeo", "sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker",
              "--dest-tls-verify=false", skopeo_yaml, "127.0.0.1:%d" % port(SKOPEO_PORT)]
    return dockyard, skopeo


def write_floor(workdir: str) -> list:
    """What Ansible itself costs: the same ansible-playbook command with one trivial module
    (``ansible.builtin.ping``) instead of registry_sync."""
    playbook = os.path.join(workdir, "floor.yml")
    with open(playbook, "w") as handle:
        json.dump([{"hosts": "localhost", "gather_facts": False,
                    "vars": {"ansible_python_interpreter": sys.executable},
                    "tasks": [{"name": "ping", "ansible.builtin.ping": {}}]}], handle, indent=1)
    return ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook]


class LatencyProxy:
    """benchmarks/latency_proxy.py in its own process, for the wan scenario."""

    def __init__(self, delay: float) -> None:
        argv = [sys.executable, os.path.join(HERE, "latency_proxy.py"), "--delay", str(delay),
                "--control", str(PROXY_CONTROL)]
        for listen, target in PROXY_ROUTES.items():
            argv += ["--route", "%d:%d" % (listen, target)]
        self.proc = subprocess.Popen(argv)  # pylint: disable=consider-using-with
        LATENCY_PROXY_PIDS.append(self.proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.counts()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("the latency proxy did not start")

    @staticmethod
    def counts() -> dict:
        import socket  # pylint: disable=import-outside-toplevel
        with socket.create_connection(("127.0.0.1", PROXY_CONTROL), timeout=10) as sock:
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.decode())

    def stop(self) -> None:
        if self.proc.pid in LATENCY_PROXY_PIDS:
            LATENCY_PROXY_PIDS.remove(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(30)


def proxy_delta(before: dict, after: dict, port: int) -> dict:
    """Requests and connections the tool sent through the proxy to the source and its destination."""
    result = {}
    for side, target in (("source", SRC_PORT), ("destination", port)):
        key = str(PROXY_OF[target])
        result[side] = dict((k, after[key][k] - before[key][k]) for k in ("requests", "connections"))
    result["requests"] = result["source"]["requests"] + result["destination"]["requests"]
    result["connections"] = result["source"]["connections"] + result["destination"]["connections"]
    return result


class PeakRss:
    """Polls /proc for processes whose command line contains ``marker``; keeps the max VmHWM, and
    the last CPU seconds seen of each (``cpu``: their sum; the last poll interval is missed).

    The processes it knows are read every ``POLL`` seconds; the whole of /proc is searched for new
    ones only every ``RESCAN`` seconds. Searching all of it every 20 ms (80-odd processes here: a
    ``cmdline`` read each) cost the bench's own process about 10% of a core (1.03 s in 10 s),
    taken from the very copy it timed; this way it costs under 2% (0.15-0.35 s in 10 s). A
    matching process is found at most ``RESCAN`` late: VmHWM is a high-water mark, so its peak is
    not lost, and /proc/<pid>/stat counts all of its CPU. What is missed is the last ``POLL`` of
    each process, as before.
    """

    POLL = 0.05
    RESCAN = 0.25

    def __init__(self, marker: str) -> None:
        self.marker = marker.encode()
        self.peak_kib = 0
        self.pids = set()
        self.cpu_of: dict = {}
        self._live: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _rescan(self) -> None:
        me = str(os.getpid())
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me or pid in self._live:
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    if self.marker in handle.read():
                        self._live.add(pid)
            except OSError:
                continue

    def _read(self, pid: str) -> bool:
        """Read one known process; False when it is gone."""
        try:
            with open("/proc/%s/status" % pid, "rb") as handle:
                status = handle.read()
        except OSError:
            return False
        at = status.find(b"\nVmHWM:")
        if at >= 0:             # kernel threads and zombies have none
            self.pids.add(pid)
            self.peak_kib = max(self.peak_kib, int(status[at + 7:status.index(b"\n", at + 1)].split()[0]))
        self.cpu_of[pid] = max(self.cpu_of.get(pid, 0.0), _process_cpu(pid))
        return True

    def _run(self) -> None:
        next_scan = 0.0
        while True:
            now = time.monotonic()
            if now >= next_scan:
                self._rescan()
                next_scan = now + self.RESCAN
            self._live = {pid for pid in self._live if self._read(pid)}
            if self._stop.wait(self.POLL):
                break

    @property
    def cpu(self) -> float:
        return sum(self.cpu_of.values())


def timed(argv: list, env: dict, marker: str | None = None, port: int | None = None) -> dict:
    """Run ``argv`` once: wall seconds, peak RSS of the processes matching ``marker`` (and their CPU
    seconds), and with ``port`` (the tool's destination) the CPU the registries and the tool spent."""
    before = cpu_snapshot(port) if port else None
    started = time.monotonic()
    module_cpu = None
    if marker:
        with PeakRss(marker) as rss:
            proc = subprocess.run(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  check=False)
        peak = rss.peak_kib / 1024.0
        module_cpu = round(rss.cpu, 2)
    else:
        proc = subprocess.run(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        peak = None
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit("%s failed (exit %d)" % (argv[0], proc.returncode))
    result = {"seconds": elapsed, "peak_rss_mib": peak, "stdout": proc.stdout}
    if port:
        result["cpu"] = cpu_delta(before, cpu_snapshot(port))
        if module_cpu is not None:
            # the processes matching the marker: the AnsiballZ module process (polled, so a little low)
            result["cpu"]["process"] = module_cpu
    return result


def module_result(measurement: dict) -> dict:
    """registry_sync's own result, from the ansible.posix.json callback's output."""
    output = json.loads(measurement.pop("stdout"))
    result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    summary = dict((k, result.get(k)) for k in ("duration", "bytes_copied", "blobs_uploaded", "blobs_mounted",
                                                "blobs_skipped", "changed", "in_flight"))
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

def describe(name: str, corpus: dict, delay: float | None) -> str:
    """The corpus of a scenario in words, for the report."""
    spec = SCENARIOS[name]
    if spec["extras"] and spec.get("big", True):
        what = ("%d repositories x %d tags sharing 2 base layers (16 + 4 MiB), a 3-platform index, one image with a "
                "%d MiB layer" % (corpus["repos"], corpus["tags"], corpus["big_mib"]))
    else:
        what = ("%d repositories x %d tags of small images (2 own layers of 32 + 4 KiB) sharing 2 base layers "
                "(16 + 4 MiB)%s" % (corpus["repos"], corpus["tags"], ", a 3-platform index" if spec["extras"] else ""))
    if delay is not None:
        what += "; both tools through the latency proxy (%.0f ms each way, one more round trip per connection)" \
            % (delay * 1000)
    return what


def write_atomically(path: str, text: str) -> None:
    temp = path + ".tmp"
    with open(temp, "w") as handle:
        handle.write(text)
    os.replace(temp, path)


def loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return handle.read().split()[0]


def fresh_registries(name: str, workdir: str) -> str:
    log("[%s] starting registries on 127.0.0.1:%d (source), :%d (registry_sync), :%d (skopeo)"
        % (name, SRC_PORT, DOCKYARD_PORT, SKOPEO_PORT))
    src_data = start_registry(SRC_PORT, workdir)
    # the source is rebuilt for every scenario so the incremental tag is new each time
    shutil.rmtree(src_data)
    src_data = start_registry(SRC_PORT, workdir)
    start_registry(DOCKYARD_PORT, workdir)
    start_registry(SKOPEO_PORT, workdir)
    return src_data


def counted(proxy, argv: list, env: dict, port: int, marker: str | None = None) -> tuple:
    """``timed`` (with the CPU spent) and the proxy's request and connection counts of this command (wan only)."""
    before = proxy.counts() if proxy else None
    measurement = timed(argv, env, marker, port)
    return measurement, (proxy_delta(before, proxy.counts(), port) if proxy else None)


def run_scenario(name: str, args, repos_n: int, tags_n: int, noop_runs: int, cache_dir: str, env: dict) -> dict:
    data = {"noop_runs": noop_runs, "load": [loadavg()]}
    src_data = fresh_registries(name, args.workdir)
    log("[%s] pushing the corpus" % name)
    corpus = push_corpus(name, repos_n, tags_n, args.big_mib, cache_dir)
    repos = repo_names(name, repos_n)
    wan = name == "wan"
    dockyard_cmd, skopeo_cmd = write_inputs(args.workdir, repos, args.concurrency, wan=wan)
    floor_cmd = write_floor(args.workdir)
    source_bytes = warm_page_cache(src_data)
    data["corpus"] = dict(corpus, repos=repos_n, tags=tags_n, big_mib=args.big_mib,
                          source_mib=source_bytes / 1048576.0)
    proxy = LatencyProxy(args.delay) if wan else None
    if wan:
        data["delay"] = args.delay
    data["what"] = describe(name, data["corpus"], args.delay if wan else None)
    try:
        log("[%s] cold sync: registry_sync" % name)
        ours, traffic = counted(proxy, dockyard_cmd, env, DOCKYARD_PORT, "AnsiballZ_registry_sync")
        data["cold"] = {"dockyard": ours}
        data["cold"]["module"] = module_result(data["cold"]["dockyard"])
        log("[%s] cold sync: skopeo" % name)
        if os.path.exists(SKOPEO_CACHE):
            os.remove(SKOPEO_CACHE)
        warm_page_cache(src_data)
        theirs, their_traffic = counted(proxy, skopeo_cmd, env, SKOPEO_PORT, "skopeo")
        data["cold"]["skopeo"] = theirs
        data["cold"]["skopeo"].pop("stdout")
        if wan:
            data["cold"]["proxy"] = {"dockyard": traffic, "skopeo": their_traffic}
        data["load"].append(loadavg())

        log("[%s] no-op re-sync (hyperfine)" % name)
        # the Ansible floor in every scenario: a ping task crosses no network, so it is the same
        # start-up cost with or without the latency proxy
        commands = {"dockyard": dockyard_cmd, "skopeo": skopeo_cmd, "ansible-floor": floor_cmd}
        noop = hyperfine(commands, env, args.workdir, noop_runs)
        # a few more (untimed by hyperfine) runs for the module's own view of a no-op: the median
        runs = []
        for _run in range(3):
            measurement, traffic = counted(proxy, dockyard_cmd, env, DOCKYARD_PORT, "AnsiballZ_registry_sync")
            # with the CPU the registries and the module process spent: the no-op's floor
            runs.append(dict(module_result(measurement), traffic=traffic, cpu=measurement.get("cpu"),
                             seconds=measurement["seconds"]))
        runs.sort(key=lambda r: r["duration"])
        data["noop"] = {"dockyard": noop["dockyard"], "skopeo": noop["skopeo"], "floor": noop.get("ansible-floor"),
                        "module": runs[1], "module_runs": [r["duration"] for r in runs]}
        if wan:
            _m, their_traffic = counted(proxy, skopeo_cmd, env, SKOPEO_PORT)
            data["noop"]["proxy"] = {"dockyard": runs[1]["traffic"], "skopeo": their_traffic}
        data["load"].append(loadavg())

        log("[%s] incremental: one new tag" % name)
        push_new_tag(name, cache_dir)
        ours, traffic = counted(proxy, dockyard_cmd, env, DOCKYARD_PORT)
        data["incremental"] = {"dockyard": ours}
        data["incremental"]["module"] = module_result(data["incremental"]["dockyard"])
        theirs, their_traffic = counted(proxy, skopeo_cmd, env, SKOPEO_PORT)
        data["incremental"]["skopeo"] = theirs
        data["incremental"]["skopeo"].pop("stdout")
        if wan:
            data["incremental"]["proxy"] = {"dockyard": traffic, "skopeo": their_traffic}
    finally:
        if proxy:
            proxy.stop()

    log("[%s] comparing digests" % name)
    data["digests"] = compare(repos)
    data["load"].append(loadavg())
    return data


def push_small(prefix: str, repos: int, tags: int, first_seed: int) -> list:
    """``repos`` repositories of ``tags`` small images each (config + one 1 KiB layer)."""
    names = ["%s/r%03d" % (prefix, i) for i in range(repos)]

    def push_repo(i: int) -> None:
        pusher = Pusher("http://127.0.0.1:%d" % SRC_PORT)
        for j in range(tags):
            image = make_image(seed=first_seed + i * 1000 + j, layers=SCALING_LAYERS)
            pusher.push(image, names[i], ["t%04d" % j])

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(push_repo, range(repos)))
    return names


def digests_ok(repos: list) -> bool:
    check = compare(repos)
    return bool(check["tags"]) and all(not check[t][k] for t in ("dockyard", "skopeo")
                                       for k in ("missing", "different", "extra"))


def run_scaling(args, env: dict) -> dict:
    rows = []
    for total in [int(n) for n in args.scaling.split(",") if n.strip()]:
        repos_n = max(1, total // SCALING_TAGS_PER_REPO)
        tags_n = min(total, SCALING_TAGS_PER_REPO)
        row = {"tags": repos_n * tags_n, "load": [loadavg()]}
        src_data = fresh_registries("scaling %d" % total, args.workdir)
        log("[scaling %d] pushing %d repositories x %d small images" % (total, repos_n, tags_n))
        repos = push_small("s%d" % total, repos_n, tags_n, 7000)
        dockyard_cmd, skopeo_cmd = write_inputs(args.workdir, repos, args.concurrency)
        warm_page_cache(src_data)
        log("[scaling %d] cold" % total)
        row["cold"] = {"dockyard": timed(dockyard_cmd, env, port=DOCKYARD_PORT)}
        row["cold"]["module"] = module_result(row["cold"]["dockyard"])
        if os.path.exists(SKOPEO_CACHE):
            os.remove(SKOPEO_CACHE)
        row["cold"]["skopeo"] = timed(skopeo_cmd, env, port=SKOPEO_PORT)
        row["cold"]["skopeo"].pop("stdout")
        log("[scaling %d] no-op" % total)
        row["noop"] = {"dockyard": timed(dockyard_cmd, env)}
        row["noop"]["module"] = module_result(row["noop"]["dockyard"])
        row["noop"]["skopeo"] = timed(skopeo_cmd, env)
        row["noop"]["skopeo"].pop("stdout")
        row["digests_ok"] = digests_ok(repos)
        row["load"].append(loadavg())
        rows.append(row)
    return {"rows": rows, "tags_per_repo": SCALING_TAGS_PER_REPO}


def run_rss(args, cache_dir: str, env: dict) -> dict:
    data = {"big_mib": args.rss_mib, "load": [loadavg()]}
    src_data = fresh_registries("rss", args.workdir)
    log("[rss] generating/pushing the %d MiB layer (cached after the first run)" % args.rss_mib)
    image = make_image(seed=98, layers=[args.rss_mib * 1024 * 1024], cache_dir=cache_dir)
    Pusher("http://127.0.0.1:%d" % SRC_PORT).push(image, "rss/huge", ["1.0"])
    repos = ["rss/huge"]
    dockyard_cmd, skopeo_cmd = write_inputs(args.workdir, repos, args.concurrency)
    warm_page_cache(src_data)
    log("[rss] cold sync, both tools")
    data["dockyard"] = timed(dockyard_cmd, env, "AnsiballZ_registry_sync", DOCKYARD_PORT)
    data["module"] = module_result(data["dockyard"])
    if os.path.exists(SKOPEO_CACHE):
        os.remove(SKOPEO_CACHE)
    data["skopeo"] = timed(skopeo_cmd, env, "skopeo", SKOPEO_PORT)
    data["skopeo"].pop("stdout")
    data["digests_ok"] = digests_ok(repos)
    data["load"].append(loadavg())
    return data


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--scenarios", default="base,scale,wan,scaling,rss",
                        help="comma-separated: base, scale, wan, scaling, rss (default: all)")
    parser.add_argument("--repos", type=int, default=24)
    parser.add_argument("--tags", type=int, default=5)
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--scale-repos", type=int, default=40)
    parser.add_argument("--scale-tags", type=int, default=25)
    parser.add_argument("--wan-repos", type=int, default=12)
    parser.add_argument("--wan-tags", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.025, help="wan: seconds added each way")
    parser.add_argument("--scaling", default="100,1000,5000", help="tag counts of the scaling table")
    parser.add_argument("--rss-mib", type=int, default=1024, help="the layer of the peak-RSS row")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the module's own")
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--scale-noop-runs", type=int, default=3)
    parser.add_argument("--workdir", default=os.environ.get("DOCKYARD_BENCH_DIR", "/var/tmp/dockyard-bench"))
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--keep", action="store_true", help="leave the registries running")
    parser.add_argument("--fresh", action="store_true",
                        help="forget the scenarios of the last latest.json (default: keep those not run now)")
    parser.add_argument("--no-docs", dest="update_docs", action="store_false",
                        help="do not rewrite the generated tables of README.md and benchmarks/README.md")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for name in scenarios:
        if name not in SCENARIOS and name not in EXTRAS:
            parser.error("unknown scenario %r (known: %s)" % (name, ", ".join(list(SCENARIOS) + list(EXTRAS))))

    for tool in ("docker", "skopeo", "hyperfine", "ansible-playbook"):
        if shutil.which(tool) is None:
            raise SystemExit("%s is needed (make bench installs skopeo and hyperfine)" % tool)
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    cache_dir = os.path.join(args.workdir, "corpus-cache")
    os.makedirs(cache_dir, exist_ok=True)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")

    latest = os.path.join(args.results, "latest.json")
    previous = {}
    if os.path.exists(latest) and not args.fresh:
        # scenarios not run this time keep their last measurement (each carries its own date)
        with open(latest) as handle:
            previous = json.load(handle).get("scenarios", {})
    data = {"skopeo_version": sh("skopeo", "--version").stdout.split()[-1],
            "ansible_version": sh("ansible", "--version").stdout.splitlines()[0].split()[-1].rstrip("]"),
            "machine": platform.platform(), "cpus": os.cpu_count() or 0, "scenarios": previous}
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
    started = time.monotonic()
    # a SIGTERM (timeout, a killed make) still runs the clean-up below: registries, proxy
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    try:
        for name in scenarios:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            scenario_started = time.monotonic()
            if name == "base":
                result = run_scenario(name, args, args.repos, args.tags, args.noop_runs, cache_dir, env)
            elif name == "scale":
                result = run_scenario(name, args, args.scale_repos, args.scale_tags, args.scale_noop_runs,
                                      cache_dir, env)
            elif name == "wan":
                result = run_scenario(name, args, args.wan_repos, args.wan_tags, args.scale_noop_runs, cache_dir, env)
            elif name == "scaling":
                result = run_scaling(args, env)
            else:
                result = run_rss(args, cache_dir, env)
            result.update(when=when, concurrency=args.concurrency,
                          minutes=round((time.monotonic() - scenario_started) / 60, 1))
            data["scenarios"][name] = result
            # written after every scenario, so an interrupted run keeps what it measured
            write_atomically(latest, json.dumps(data, indent=2))
            text = report.full_report(data)
            write_atomically(os.path.join(args.results, "latest.md"), text)
            log("%s done in %.1f min (%.1f min since the start)"
                % (name, result["minutes"], (time.monotonic() - started) / 60))
        if args.update_docs:
            report.update_docs(data)
            log("README.md and benchmarks/README.md: generated tables rewritten from %s" % latest)
    finally:
        if not args.keep:
            stop_registries(args.workdir, purge=True)
        lock.close()
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
