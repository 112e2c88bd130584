# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""registry_client_config's work (its backend): read and check the runtimes' files, write them, reload.

What the files say is rendered and merged by ``_runtime_config`` (pure functions); this file
finds the runtimes, reads every file and checks it (``dockerd --validate``, ``containerd config
dump``, TOML), decides every file's content (:class:`Change`) before anything is written, writes
through ``_io`` and reloads a runtime only when it does not read the changed file live.

Files are read with ``_io.read_file`` (a FIFO, a device or a directory is refused, never waited
on) and written with ``_io.atomic_write`` (owner, mode and SELinux context kept; ``client.key``
0600 from its first byte). The files several runs merge into -- ``daemon.json``, containerd's
``config.toml`` and the ``registries.conf.d`` drop-ins -- are read, changed and written under
their ``_io.FileLock``, so two runs at once do not lose one another's entries. When one write
fails, the files already written are put back as they were.

Raises RegistryError (InvalidInput for bad input or files a runtime would refuse); never fails
the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Iterator

from ansible_collections.dockyard.registry.plugins.module_utils import _command, _io
from ansible_collections.dockyard.registry.plugins.module_utils import _runtime_config as rc
from ansible_collections.dockyard.registry.plugins.module_utils._errors import InvalidInput, RegistryError

_toml = rc.toml_parser()

__all__ = [
    "Change",
    "RuntimeConfig",
    "find_command",
    "registry_client_config",
    "systemd_active",
]

_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_DAEMON_JSON = "Docker daemon configuration"
_CONFIG_TOML = "containerd configuration"
_DROP_IN = "registries.conf.d drop-in"
_TRUST_ANCHOR = "system trust anchor"
_CERT_FILES = (("ca.crt", "CA certificate"), ("client.cert", "client certificate"), ("client.key", "client key"))


def find_command(name: str) -> str | None:
    """``name`` on PATH or in the usual sbin/bin directories; an absolute path must exist."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    path = os.environ.get("PATH", "")
    extra = [d for d in _SEARCH_PATH if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([p for p in [path] + extra if p]))


def systemd_active(unit: str) -> bool:
    """Whether systemd runs here and ``unit`` is active."""
    if not os.path.isdir("/run/systemd/system"):
        return False
    systemctl = find_command("systemctl")
    if not systemctl:
        return False
    return _command.run([systemctl, "is-active", "--quiet", unit])[0] == 0


@contextlib.contextmanager
def _scratch_file(data: bytes, prefix: str, suffix: str) -> Iterator[str]:
    """A temporary file holding ``data`` for a runtime's own check of it (removed afterwards)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield tmp
    finally:
        os.unlink(tmp)


class Change:
    """One file: what it holds now and what it should hold (``None``: absent).

    ``mode`` None keeps an existing file's mode (a new one gets 0644); ``what`` names the file in
    messages (``_io``'s errors: "client key /etc/... is a FIFO ...").
    """

    def __init__(self, path: str, runtime: str, before: bytes | None, after: bytes | None,
                 mode: int | None = 0o644, secret: bool = False, host_dir: bool = False, what: str = "file") -> None:
        self.path = path
        self.what = what
        self.host_dir = host_dir  # its directory belongs to one host: removed when left empty
        self.runtime = runtime
        self.before = before
        self.after = after
        self.mode = mode
        self.secret = secret
        self.mode_changed = False
        if before is not None and after is not None and mode is not None:
            try:
                self.mode_changed = (os.stat(path).st_mode & 0o7777) != mode
            except OSError:
                self.mode_changed = False

    @property
    def action(self) -> str:
        if self.before is None and self.after is None:
            return "unchanged"
        if self.before is None:
            return "created"
        if self.after is None:
            return "removed"
        if self.before != self.after or self.mode_changed:
            return "updated"
        return "unchanged"

    def diff(self) -> dict:
        def show(data: bytes | None) -> str:
            if data is None:
                return ""
            if self.secret:
                return "(private key, %d bytes, not shown)\n" % len(data)
            return data.decode("utf-8", "replace")
        return {"before_header": self.path, "after_header": self.path,
                "before": show(self.before), "after": show(self.after)}


class RuntimeConfig:
    """One run: ``run()`` plans (reads and checks everything), writes, reloads, and returns the result."""

    def __init__(self, params: dict, check_mode: bool = False) -> None:
        self.p = params
        self.check_mode = check_mode
        self._reset()

    def _reset(self) -> None:
        self.warnings: list[str] = []
        self.changes: list[Change] = []
        self.reloads: list[dict] = []
        self.ca_files: dict[str, str] = {}
        self.client_files: dict[str, dict] = {}
        self.containerd_config_path: str | None = None
        self.docker_pid: int | None = None
        self.daemon_json_change: Change | None = None
        self.containerd_config_change: Change | None = None
        # The files several runs merge into or share (daemon.json, config.toml, drop-ins): path ->
        # (what, the bytes planned from). Written under their lock; planned again when they moved.
        self.shared: dict[str, tuple[str, bytes | None]] = {}

    def _read(self, path: str, what: str, shared: bool = False) -> bytes | None:
        data = _io.read_file(path, what)
        if shared:
            self.shared[path] = (what, data)
        return data

    # ---- input ------------------------------------------------------------------------------
    def entries(self) -> tuple[list[rc.RegistryEntry], list[rc.MirrorEntry]]:
        registries: list[rc.RegistryEntry] = []
        seen = set()
        for index, item in enumerate(self.p["registries"]):
            what = "registries[%d].host" % index
            host = rc.normalise_host(item["host"], what)
            if host in seen:
                raise InvalidInput("%s: %s is listed twice; merge the two entries" % (what, host))
            seen.add(host)
            cert, key = item.get("client_cert_content"), item.get("client_key_content")
            if bool(cert) != bool(key):
                raise InvalidInput("registries[%d] (%s): client_cert and client_key must be given together"
                                   % (index, host))
            for name, value in (("ca", item.get("ca_content")), ("client_cert", cert)):
                if value and "-----BEGIN CERTIFICATE-----" not in value:
                    raise InvalidInput("registries[%d] (%s): %s is not a PEM certificate (no '-----BEGIN"
                                       " CERTIFICATE-----' line)" % (index, host, name))
            if key and "PRIVATE KEY-----" not in key:
                raise InvalidInput("registries[%d] (%s): client_key is not a PEM private key" % (index, host))
            registries.append(rc.RegistryEntry(
                host=host, state=item["state"], ca=_pem(item.get("ca_content")), client_cert=_pem(cert),
                client_key=_pem(key), insecure=bool(item.get("insecure"))))
        mirrors: list[rc.MirrorEntry] = []
        seen = set()
        for index, item in enumerate(self.p["mirrors"]):
            upstream = rc.normalise_upstream(item["upstream"], "mirrors[%d].upstream" % index)
            if upstream in seen:
                raise InvalidInput("mirrors[%d]: upstream %s is listed twice; put all its mirrors in one entry"
                                   % (index, upstream))
            seen.add(upstream)
            urls = tuple(rc.parse_mirror(url, "mirrors[%d].mirrors[%d]" % (index, n))
                         for n, url in enumerate(item.get("mirrors") or []))
            if item["state"] == "present" and not urls:
                raise InvalidInput("mirrors[%d] (%s): give at least one mirror URL, or state: absent"
                                   % (index, upstream))
            mirrors.append(rc.MirrorEntry(upstream=upstream, mirrors=urls, state=item["state"]))
        return registries, mirrors

    def runtimes(self) -> list[str]:
        wanted = self.p["runtimes"]
        found = {
            "docker": find_command(self.p["docker_command"]) is not None,
            "containerd": find_command(self.p["containerd_command"]) is not None,
            "podman": any(find_command(c) is not None for c in self.p["containers_commands"]),
        }
        if "auto" in wanted:
            if len(wanted) > 1:
                raise InvalidInput("runtimes: auto cannot be combined with explicit runtimes (%s); give either"
                                   " [auto] or the list" % ", ".join(w for w in wanted if w != "auto"))
            chosen = [name for name in ("docker", "containerd", "podman") if found[name]]
            if not chosen:
                self.warnings.append("No container runtime found (dockerd, containerd, %s): no runtime was"
                                     " configured" % ", ".join(self.p["containers_commands"]))
            return chosen
        missing = [name for name in wanted if not found[name]]
        if missing:
            hints = {
                "docker": "%s not found" % self.p["docker_command"],
                "containerd": "%s not found" % self.p["containerd_command"],
                "podman": "none of %s found" % ", ".join(self.p["containers_commands"]),
            }
            raise InvalidInput(
                "runtimes lists %s, but %s on this host: install it, or remove it from the list (or use"
                " [auto]). Nothing was changed." % (", ".join(missing), "; ".join(hints[m] for m in missing)))
        return [name for name in ("docker", "containerd", "podman") if name in wanted]

    # ---- planning ---------------------------------------------------------------------------
    def add(self, change: Change) -> None:
        if change.before is None and change.after is None:
            return
        self.changes.append(change)

    def plan_certs(self, runtime: str, root: str, registries: list[rc.RegistryEntry]) -> None:
        for entry in registries:
            directory = os.path.join(root, entry.host)
            wanted = {}
            if entry.state == "present":
                if entry.ca:
                    wanted["ca.crt"] = entry.ca
                if entry.client_cert and entry.client_key:
                    wanted["client.cert"] = entry.client_cert
                    wanted["client.key"] = entry.client_key
            for name, what in _CERT_FILES:
                path = os.path.join(directory, name)
                content = wanted.get(name)
                self.add(Change(path, runtime, self._read(path, what), content.encode() if content else None,
                                mode=0o600 if name == "client.key" else 0o644, secret=name == "client.key",
                                host_dir=True, what=what))
            if "ca.crt" in wanted:
                self.ca_files.setdefault(entry.host, os.path.join(directory, "ca.crt"))
            if "client.cert" in wanted:
                self.client_files.setdefault(entry.host, {"cert": os.path.join(directory, "client.cert"),
                                                          "key": os.path.join(directory, "client.key")})

    def plan_owned_file(self, runtime: str, path: str, content: str | None, what: str,
                        host_dir: bool = False) -> None:
        """A file this module owns whole (marker line); one outside a host directory is shared by runs."""
        before = self._read(path, what, shared=not host_dir)
        owned = before is None or before.decode("utf-8", "replace").startswith(rc.MARKER)
        if content is None and not owned:
            self.warnings.append("%s was not written by dockyard.registry (no marker line): left as it is" % path)
            return
        if content is not None and not owned:
            self.warnings.append("%s was not written by dockyard.registry: replaced (the diff shows the old"
                                 " content)" % path)
        self.add(Change(path, runtime, before, content.encode() if content is not None else None, host_dir=host_dir,
                        what=what))

    def plan_docker(self, registries, mirrors, hosts) -> None:
        p = self.p
        self.plan_certs("docker", p["docker_certs_dir"], registries)
        for entry in mirrors:
            if entry.upstream != rc.DOCKER_HUB_UPSTREAM and entry.state == "present":
                self.warnings.append("Docker Engine mirrors Docker Hub only (registry-mirrors): the mirrors of %s"
                                     " reach containerd and Podman only" % entry.upstream)
        path = p["docker_daemon_json"]
        raw = self._read(path, _DAEMON_JSON, shared=True)
        text = raw.decode("utf-8", "replace") if raw is not None else ""
        config = rc.parse_daemon_json(text, path)
        hub = [m for m in mirrors if m.upstream == rc.DOCKER_HUB_UPSTREAM]
        merged = rc.merge_daemon_json(config, registries, hub)
        self.docker_pid = self._docker_pid()
        if merged != config:
            self._check_docker_flags(merged, config)
            after = (json.dumps(merged, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
            change = Change(path, "docker", raw, after, mode=None, what=_DAEMON_JSON)
            self._validate_daemon_json(path, after)
            self.add(change)
            self.daemon_json_change = change

    def _docker_pid(self) -> int | None:
        raw = self._read(self.p["docker_pidfile"], "dockerd pid file")
        if raw is None:
            return None
        try:
            pid = int(raw.decode().strip())
        except ValueError:
            return None
        return pid if os.path.exists("/proc/%d" % pid) else None

    def _check_docker_flags(self, merged: dict, config: dict) -> None:
        if self.docker_pid is None:
            return
        try:
            with open("/proc/%d/cmdline" % self.docker_pid, "rb") as handle:
                args = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            return
        for key, flag in (("insecure-registries", "--insecure-registry"), ("registry-mirrors", "--registry-mirror")):
            if key in merged and any(a == flag or a.startswith(flag + "=") for a in args):
                raise InvalidInput(
                    "dockerd (pid %s) was started with %s, and Docker refuses a setting given both as a flag and"
                    " in %s: move the flag's values into %s under %r and drop the flag. Nothing was changed."
                    % (self.docker_pid, flag, self.p["docker_daemon_json"], self.p["docker_daemon_json"], key))
        for index, arg in enumerate(args):
            value = None
            if arg == "--config-file" and index + 1 < len(args):
                value = args[index + 1]
            elif arg.startswith("--config-file="):
                value = arg.split("=", 1)[1]
            if value and os.path.realpath(value) != os.path.realpath(self.p["docker_daemon_json"]):
                self.warnings.append("dockerd (pid %s) reads %s, not %s: set docker_daemon_json to it"
                                     % (self.docker_pid, value, self.p["docker_daemon_json"]))

    def _validate_daemon_json(self, path: str, data: bytes) -> None:
        dockerd = find_command(self.p["docker_command"])
        if not dockerd:
            return
        helptext = b"".join(_command.run([dockerd, "--help"])[1:]).decode("utf-8", "replace")
        if "--validate" not in helptext:
            return  # dockerd before 23.0: the JSON checks above are what can be done
        with _scratch_file(data, "daemon.json.validate.", ".json") as tmp:
            code, out, err = _command.run([dockerd, "--validate", "--config-file", tmp])
        if code != 0:
            raise InvalidInput("dockerd --validate rejects %s as it would be written: %s. Fix the other keys of"
                               " the file, then run again. Nothing was changed."
                               % (path, (out + err).decode("utf-8", "replace").strip()))

    def _containerd_dump(self, path: str | None) -> tuple[int, str]:
        binary = find_command(self.p["containerd_command"])
        code, out, err = _command.run([binary, "--config", path or os.devnull, "config", "dump"])
        return code, (out if code == 0 else err).decode("utf-8", "replace")

    def plan_containerd(self, registries, mirrors, hosts) -> None:
        p = self.p
        root = p["containerd_certs_dir"]
        self.plan_certs("containerd", root, registries)
        by_host = {e.host: e for e in registries}
        managed = [e.host for e in registries] + [m.upstream for m in mirrors]
        for host in dict.fromkeys(managed):
            settings = hosts.get(host)
            content = rc.render_hosts_toml(settings, root, by_host) if settings else None
            self.plan_owned_file("containerd", os.path.join(root, host, "hosts.toml"), content, "containerd hosts file",
                                 host_dir=True)
        path = p["containerd_config"]
        raw = self._read(path, _CONFIG_TOML, shared=True)
        code, dump = self._containerd_dump(path if raw is not None else None)
        if code != 0:
            raise InvalidInput("containerd cannot load %s: %s. Fix the file (containerd --config %s config dump"
                               " shows what it reads), then run again. Nothing was changed." % (path, dump.strip(), path))
        current = rc.dump_config_path(dump)
        self.containerd_config_path = current
        if rc.path_covers(current, root) or not hosts:
            return
        if not p["containerd_manage_config_path"]:
            self.warnings.append("containerd's CRI plugin does not read %s (config_path is %r in %s): the hosts.toml"
                                 " files reach ctr --hosts-dir only" % (root, current or "", path))
            return
        legacy = rc.dump_legacy_registry_settings(dump)
        if legacy:
            raise InvalidInput(
                "%s configures registries the deprecated way (%s); containerd refuses those together with"
                " config_path. Move them into %s/<host>/hosts.toml files (or remove them), or set"
                " containerd_manage_config_path: false. Nothing was changed." % (path, ", ".join(legacy), root))
        wanted = root if not current else "%s:%s" % (root, current)
        text = raw.decode("utf-8", "replace") if raw is not None else ""
        candidate = rc.set_containerd_config_path(text, wanted)
        self._check_containerd_candidate(path, candidate, wanted)
        change = Change(path, "containerd", raw, candidate.encode("utf-8"), mode=None, what=_CONFIG_TOML)
        self.add(change)
        self.containerd_config_change = change
        self.containerd_config_path = wanted

    def _check_containerd_candidate(self, path: str, candidate: str, wanted: str) -> None:
        with _scratch_file(candidate.encode("utf-8"), "config.toml.validate.", ".toml") as tmp:
            code, dump = self._containerd_dump(tmp)
        got = rc.dump_config_path(dump) if code == 0 else None
        if code != 0 or got != wanted:
            reason = dump.strip() if code != 0 else "containerd then reads config_path %r" % got
            raise InvalidInput(
                "Could not add config_path to %s automatically (%s). Add config_path = %r to the table [%s]"
                " by hand, then run again. Nothing was changed."
                % (path, reason, wanted, rc.containerd_registry_table(candidate)))

    def plan_podman(self, registries, mirrors, hosts) -> None:
        p = self.p
        root = os.path.join(p["containers_dir"], "certs.d")
        self.plan_certs("podman", root, registries)
        dropins = os.path.join(p["containers_dir"], "registries.conf.d")
        self._check_containers_files(dropins)
        by_host = {e.host: e for e in registries}
        managed = [e.host for e in registries] + [m.upstream for m in mirrors]
        for host in dict.fromkeys(managed):
            settings = hosts.get(host)
            content = rc.render_registries_conf(settings, by_host) if settings else None
            name = "%s%s.conf" % (p["containers_conf_prefix"], rc.file_name_for(host))
            self.plan_owned_file("podman", os.path.join(dropins, name), content, _DROP_IN)

    def _check_containers_files(self, dropins: str) -> None:
        files = [os.path.join(self.p["containers_dir"], "registries.conf")]
        if os.path.isdir(dropins):
            files += [os.path.join(dropins, n) for n in sorted(os.listdir(dropins)) if n.endswith(".conf")]
        if _toml is None:
            self.warnings.append("Python %s here has neither tomllib nor tomli: the syntax of %s and the files in %s"
                                 " was not checked" % (".".join(map(str, sys.version_info[:2])),
                                                       files[0], dropins))
            return
        for path in files:
            raw = self._read(path, "containers registries configuration")
            if raw is None:
                continue
            try:
                data = _toml.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput("%s does not parse as TOML (%s), and podman, skopeo and buildah refuse to run"
                                   " while it is there: fix or remove it, then run again. Nothing was changed."
                                   % (path, exc))
            if path == files[0] and "registries" in data and "registry" not in data:
                raise InvalidInput(
                    "%s uses the old v1 format ([registries.search] ...), which cannot be combined with the v2"
                    " [[registry]] drop-ins this role writes: convert it to v2 (see containers-registries.conf(5)),"
                    " then run again. Nothing was changed." % path)

    def plan_system_trust(self, registries) -> None:
        directory = self.p["system_trust_dir"] or self._default_trust_dir()
        if directory is None:
            if self.p["system_trust"]:
                raise InvalidInput("system_trust: no trust anchors directory found (/usr/local/share/ca-certificates"
                                   " or /etc/pki/ca-trust/source/anchors): set system_trust_dir. Nothing was changed.")
            return
        for entry in registries:
            path = os.path.join(directory, "dockyard-%s.crt" % rc.file_name_for(entry.host))
            wanted = entry.ca if (entry.state == "present" and self.p["system_trust"]) else None
            if wanted is None and not (entry.state == "absent"):
                continue  # system_trust off: files of present registries are left as they are
            self.add(Change(path, "system", self._read(path, _TRUST_ANCHOR), wanted.encode() if wanted else None,
                            what=_TRUST_ANCHOR))

    @staticmethod
    def _default_trust_dir() -> str | None:
        for candidate in ("/usr/local/share/ca-certificates", "/etc/pki/ca-trust/source/anchors"):
            if os.path.isdir(candidate):
                return candidate
        return None

    def _trust_command(self) -> list[str]:
        if self.p["system_trust_command"]:
            return self.p["system_trust_command"]
        directory = self.p["system_trust_dir"] or self._default_trust_dir() or ""
        if directory.startswith("/etc/pki/"):
            return ["update-ca-trust", "extract"]
        return ["update-ca-certificates"]

    # ---- applying ---------------------------------------------------------------------------
    def apply(self) -> None:
        """Write every change; when one fails, put back the files already written, then re-raise."""
        done: list[Change] = []
        try:
            for change in self.changes:
                if change.action == "unchanged":
                    continue
                self._put(change, change.after)
                done.append(change)
        except BaseException:
            for change in reversed(done):
                try:
                    self._put(change, change.before)
                except (OSError, RegistryError):
                    pass
            raise

    @staticmethod
    def _put(change: Change, data: bytes | None) -> None:
        """Make ``change.path`` hold ``data`` (None: remove it, and its host directory when left empty)."""
        path = change.path
        if data is None:
            if os.path.lexists(path):
                os.unlink(path)
            if change.host_dir:
                try:
                    os.rmdir(os.path.dirname(path))  # only succeeds when nothing else is left in it
                except OSError:
                    pass
            return
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755, exist_ok=True)
        if _io.read_file(path, change.what) != data:
            _io.atomic_write(path, data, what=change.what, mode=change.mode, new_file_mode=0o644)
        elif change.mode is not None:
            os.chmod(path, change.mode)

    def _changed(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    def changed_runtimes(self) -> set[str]:
        return {c.runtime for c in self._changed()}

    def _run(self, argv: list[str]) -> tuple[bool, str]:
        binary = find_command(argv[0])
        if binary is None:
            return False, "%s not found" % argv[0]
        code, out, err = _command.run([binary] + argv[1:])
        return code == 0, (out + err).decode("utf-8", "replace").strip()

    def reload(self) -> None:
        p = self.p
        changed = self.changed_runtimes()
        if self.daemon_json_change is not None and self.daemon_json_change.action != "unchanged":
            self.reloads.append(self._reload_docker())
        if self.containerd_config_change is not None and self.containerd_config_change.action != "unchanged":
            self.reloads.append(self._restart_containerd())
        if "podman" in changed and find_command("crio") and systemd_active(p["crio_service"]):
            self.reloads.append(self._do("crio", "reload", ["systemctl", "reload", p["crio_service"]],
                                         "systemctl reload %s" % p["crio_service"]))
        if "system" in changed:
            command = self._trust_command()
            self.reloads.append(self._do("system", "update", command, " ".join(command)))
            self.warnings.append("The system trust store changed: Docker Engine reads it only when it starts (restart"
                                 " it for that to matter; the certs.d files work without a restart)")

    def _do(self, runtime: str, action: str, argv: list[str], how: str) -> dict:
        if self.check_mode:
            return {"runtime": runtime, "action": action, "done": False, "how": "check mode: would run %s" % how}
        ok, out = self._run(argv)
        if not ok:
            raise RegistryError("%s failed after the files were written: %s. The files are in place; run it by"
                                " hand once the cause is fixed." % (how, out))
        return {"runtime": runtime, "action": action, "done": True, "how": how}

    def _reload_docker(self) -> dict:
        p = self.p
        if p["docker_reload"] == "never":
            self.warnings.append("%s changed: reload dockerd (systemctl reload docker, or kill -HUP its pid) for"
                                 " it to take effect" % p["docker_daemon_json"])
            return {"runtime": "docker", "action": "reload", "done": False, "how": "docker_reload=never"}
        if systemd_active(p["docker_service"]):
            return self._do("docker", "reload", ["systemctl", "reload", p["docker_service"]],
                            "systemctl reload %s" % p["docker_service"])
        pid = self.docker_pid
        if pid is None:
            return {"runtime": "docker", "action": "reload", "done": False,
                    "how": "no running dockerd (no live pid in %s): it reads the file when it starts"
                           % p["docker_pidfile"]}
        how = "SIGHUP to dockerd pid %s" % pid
        if self.check_mode:
            return {"runtime": "docker", "action": "reload", "done": False, "how": "check mode: would send " + how}
        os.kill(pid, signal.SIGHUP)
        return {"runtime": "docker", "action": "reload", "done": True, "how": how}

    def _restart_containerd(self) -> dict:
        p = self.p
        note = ("containerd must restart once for its CRI plugin to read config_path (%s): running containers"
                " keep running, a kubelet sees the runtime go away for a moment" % self.containerd_config_path)
        if p["containerd_restart"] == "never":
            self.warnings.append(note + "; containerd_restart=never: restart it yourself")
            return {"runtime": "containerd", "action": "restart", "done": False, "how": "containerd_restart=never"}
        if p["containerd_restart_command"]:
            command = p["containerd_restart_command"]
            result = self._do("containerd", "restart", command, " ".join(command))
        elif systemd_active(p["containerd_service"]):
            result = self._do("containerd", "restart", ["systemctl", "restart", p["containerd_service"]],
                              "systemctl restart %s" % p["containerd_service"])
        else:
            self.warnings.append(note + "; systemd does not run %s here and no containerd_restart_command was given:"
                                 " restart it yourself" % p["containerd_service"])
            return {"runtime": "containerd", "action": "restart", "done": False,
                    "how": "not under systemd and no containerd_restart_command"}
        self.warnings.append(note + ": restarted (%s)" % result["how"] if result["done"] else note)
        return result

    def plan(self) -> list[str]:
        """Read and check everything; decide every file's content. Writes nothing."""
        self._reset()
        registries, mirrors = self.entries()
        runtimes = self.runtimes()
        hosts = rc.host_settings(registries, mirrors)
        if "docker" in runtimes:
            self.plan_docker(registries, mirrors, hosts)
        if "containerd" in runtimes:
            self.plan_containerd(registries, mirrors, hosts)
        if "podman" in runtimes:
            self.plan_podman(registries, mirrors, hosts)
        self.plan_system_trust(registries)
        return runtimes

    def _lock_shared_files(self, locks: contextlib.ExitStack) -> set[str]:
        """Lock the shared files this plan read, in path order (two runs never wait on each other in a
        circle), then plan again when one of them changed since it was read. Returns the locked paths."""
        writes = set(c.path for c in self._changed())
        locked = set()
        for path in sorted(self.shared):
            what = self.shared[path][0]
            directory = os.path.dirname(_io.resolve_path(path))
            if not os.path.isdir(directory):
                if path not in writes:
                    continue  # nothing there and nothing to write: nothing to lose
                os.makedirs(directory, mode=0o755, exist_ok=True)  # the lock file's home; the write needs it anyway
            locks.enter_context(_io.FileLock(path, what=what))
            locked.add(path)
        if any(_io.read_file(path, what) != data for path, (what, data) in self.shared.items()):
            self.plan()  # another run wrote one of them meanwhile: merge into what is there now
            late = sorted(c.path for c in self._changed() if c.path in self.shared and c.path not in locked)
            if late:
                raise RegistryError("%s appeared while this task ran (another run at the same time?): run it again"
                                    % ", ".join(late))
        return locked

    def run(self) -> dict:
        """Plan, then (unless in check mode) lock the shared files, write, reload; the module's result."""
        with contextlib.ExitStack() as locks:
            try:
                runtimes = self.plan()
                if self._changed() and not self.check_mode:
                    self._lock_shared_files(locks)
            except RegistryError as err:
                if "Nothing was changed" not in err.message:
                    err.message = err.message.rstrip(". ") + ". Nothing was changed."
                raise
            changed = bool(self._changed())
            if changed and not self.check_mode:
                self.apply()
        self.reload()
        return {
            "changed": changed,
            "runtimes": runtimes,
            "files": [{"path": c.path, "runtime": c.runtime, "action": c.action} for c in self.changes],
            "reloads": self.reloads,
            "ca_files": self.ca_files,
            "client_files": self.client_files,
            "containerd_config_path": self.containerd_config_path,
            "pending": [c.path for c in self._changed()] if self.check_mode else [],
            "diff": [c.diff() for c in self._changed()],
        }


def _pem(value: str | None) -> str | None:
    if not value:
        return None
    return value.strip() + "\n"


def registry_client_config(params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """The module's result for ``params``; its warnings in ``warnings``, its diff only with ``diff``."""
    runner = RuntimeConfig(params, check_mode=check_mode)
    try:
        result = runner.run()
    except OSError as err:
        raise RegistryError("%s: %s" % (getattr(err, "filename", None) or "file operation", err.strerror or err))
    if not diff:
        result.pop("diff")
    result["warnings"] = runner.warnings
    return result
