# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Deterministic test images, pushed with plain HTTP calls (independent of the collection).

Everything is a function of its seeds and sizes, so two runs (or two machines) make the
same digests:

* a layer is a gzip'ed tar (docker can pull and extract it) holding one file of
  ``size`` pseudo-random bytes from ``random.Random(seed)``; it is generated as a stream
  (tar -> sha256 diff_id -> zlib level 1 -> sha256 digest) and never held in memory when
  it is larger than ``MEMORY_LIMIT``: then it goes to a cache directory, where later runs
  find it again;
* a config blob with os, architecture, created, labels and ``rootfs.diff_ids``;
* a Docker v2 schema 2 manifest or an OCI manifest; an OCI index (or Docker manifest list)
  of several platforms.

From Python::

    from corpus import Pusher, make_image, make_multiarch
    image = make_image(seed=1, layers=[1024, 4096], base_seed=100, base_layers=[8192])
    Pusher("http://127.0.0.1:5201").push(image, "team/app", ["v1", "v2"])

From the command line (prints a JSON description, digests included)::

    python corpus.py push --registry localhost:5204 --username U --password-env PW \\
        --ca-cert ca.crt --repo team/app --tags v1 v2 --seed 1 --layers 1024 4096 [--multiarch]
    python corpus.py describe --seed 1 --layers 1024 4096      # the same description, no push

Registry addresses: ``http://host:port``, ``https://host:port``, or ``host:port`` (HTTPS).
Auth: anonymous, Basic, or the Bearer token flow (challenge -> realm?service&scope).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import sys
import tarfile
import tempfile
import time
import typing as t
import zlib

import requests

__all__ = [
    "Blob", "Image", "Index", "Pusher", "layer_blob", "make_image", "make_index", "make_multiarch", "main",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

MEMORY_LIMIT = 8 * 1024 * 1024     # larger layers are streamed to a file, never held in memory
GEN_BLOCK = 1024 * 1024            # the pseudo-random stream is made in blocks of this size
EPOCH = 1704067200                 # 2024-01-01T00:00:00Z: the base of every "created"


class Blob:
    """A content-addressed blob: in memory (``data``) or in a file (``path``)."""

    def __init__(self, digest: str, size: int, media_type: str, data: bytes | None = None,
                 path: str | None = None, diff_id: str | None = None) -> None:
        self.digest = digest
        self.size = size
        self.media_type = media_type
        self.data = data
        self.path = path
        self.diff_id = diff_id

    def open(self) -> t.BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")  # pylint: disable=consider-using-with

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


def _json_blob(obj: dict, media_type: str) -> Blob:
    data = json.dumps(obj, indent=3, sort_keys=False).encode("utf-8")
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), media_type, data=data)


def _random_blocks(seed: int, size: int) -> t.Iterator[bytes]:
    """``size`` pseudo-random bytes from a seed, in blocks of ``GEN_BLOCK``."""
    rng = random.Random(seed)
    left = size
    while left:
        block = rng.randbytes(min(GEN_BLOCK, left))
        left -= len(block)
        yield block


class _LayerWriter:
    """Receives the tar stream: hashes it (diff_id), gzips it, hashes and stores the result."""

    def __init__(self, sink: t.BinaryIO, level: int) -> None:
        self.diff = hashlib.sha256()
        self.digest = hashlib.sha256()
        self.size = 0
        self.tar_size = 0
        self.sink = sink
        # wbits 31: a gzip wrapper with mtime 0 and no file name, so the bytes are reproducible.
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def _out(self, data: bytes) -> None:
        if data:
            self.digest.update(data)
            self.size += len(data)
            self.sink.write(data)

    def write(self, data: bytes) -> None:
        self.diff.update(data)
        self.tar_size += len(data)
        self._out(self.compressor.compress(data))

    def close(self) -> None:
        self._out(self.compressor.flush())


def _write_tar(writer: _LayerWriter, name: str, seed: int, size: int) -> None:
    """A one-file USTAR archive, written by hand so that the data goes through in big blocks
    (no PAX headers, which would carry times: the bytes depend on the seed and size only)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = EPOCH
    info.mode = 0o644
    info.uname = info.gname = "root"
    writer.write(info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict"))
    for block in _random_blocks(seed, size):
        writer.write(block)
    writer.write(b"\0" * (-size % tarfile.BLOCKSIZE))
    writer.write(b"\0" * (2 * tarfile.BLOCKSIZE))      # end of archive
    writer.write(b"\0" * (-writer.tar_size % tarfile.RECORDSIZE))


def default_level(size: int) -> int:
    """gzip level 1 for small layers; level 0 (stored deflate blocks, still valid gzip) above
    ``MEMORY_LIMIT``: deflate on random data runs at a few MB/s on a busy 2-core machine."""
    return 1 if size <= MEMORY_LIMIT else 0


def layer_blob(seed: int, size: int, media_type: str = DOCKER_LAYER, cache_dir: str | None = None,
               level: int | None = None) -> Blob:
    """A gzip'ed tar layer with one file of ``size`` random bytes (``layer-<seed>.bin``).

    Larger than ``MEMORY_LIMIT``, it is streamed to ``cache_dir`` (default
    ``$DOCKYARD_CORPUS_CACHE`` or ``$TMPDIR/dockyard-corpus``) and found there next time."""
    if level is None:
        level = default_level(size)
    key = "layer-%d-%d-z%d" % (seed, size, level)
    big = size > MEMORY_LIMIT
    if cache_dir is None and big:
        cache_dir = os.environ.get("DOCKYARD_CORPUS_CACHE") or os.path.join(tempfile.gettempdir(), "dockyard-corpus")
    if cache_dir:
        meta_path = os.path.join(cache_dir, key + ".json")
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
            if os.path.getsize(meta["path"]) == meta["size"]:
                return Blob(meta["digest"], meta["size"], media_type, path=meta["path"], diff_id=meta["diff_id"])
        except (OSError, ValueError, KeyError):
            pass
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=cache_dir, prefix=key + ".")
        sink: t.BinaryIO = os.fdopen(fd, "wb")
    else:
        sink = io.BytesIO()
    with sink:
        writer = _LayerWriter(sink, level)
        _write_tar(writer, "layer-%d.bin" % seed, seed, size)
        writer.close()
        data = sink.getvalue() if isinstance(sink, io.BytesIO) else None
    digest = "sha256:" + writer.digest.hexdigest()
    diff_id = "sha256:" + writer.diff.hexdigest()
    if not cache_dir:
        return Blob(digest, writer.size, media_type, data=data, diff_id=diff_id)
    path = os.path.join(cache_dir, digest.replace(":", "-") + ".blob")
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, path)
    meta = {"digest": digest, "size": writer.size, "diff_id": diff_id, "path": path}
    with open(meta_path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    os.replace(meta_path + ".tmp", meta_path)
    return Blob(digest, writer.size, media_type, path=path, diff_id=diff_id)


class Image:
    """A single-platform image: config, layers and the manifest that ties them."""

    def __init__(self, manifest: Blob, config: Blob, layers: list[Blob], platform: dict) -> None:
        self.manifest = manifest
        self.config = config
        self.layers = layers
        self.platform = platform

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    def blobs(self) -> list[Blob]:
        return [*self.layers, self.config]

    def describe(self) -> dict:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.manifest.size,
            "platform": self.platform,
            "config": self.config.digest,
            "layers": [layer.digest for layer in self.layers],
            "total_size": self.manifest.size + self.config.size + sum(b.size for b in self.layers),
        }


class Index:
    """A multi-platform index (OCI) or manifest list (Docker) and its child images."""

    def __init__(self, manifest: Blob, children: list[Image]) -> None:
        self.manifest = manifest
        self.children = children

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    def describe(self) -> dict:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.manifest.size,
            "platforms": {"%s/%s" % (c.platform["os"], c.platform["architecture"]): c.digest
                          for c in self.children},
            "children": [c.describe() for c in self.children],
        }


def make_image(seed: int, layers: t.Sequence[int] = (1024,), base_layers: t.Sequence[int] = (),
               base_seed: int | None = None, fmt: str = "docker", os_name: str = "linux",
               architecture: str = "amd64", variant: str | None = None, labels: dict | None = None,
               created: str | None = None, cache_dir: str | None = None) -> Image:
    """An image whose layers are ``base_layers`` (seeded by ``base_seed``, shared between
    images that use the same base) and then ``layers`` (seeded by ``seed``, its own)."""
    layer_type = OCI_LAYER if fmt == "oci" else DOCKER_LAYER
    if base_seed is None:
        base_seed = seed + 1_000_000
    blobs = [layer_blob(base_seed * 1000 + i, size, layer_type, cache_dir) for i, size in enumerate(base_layers)]
    # Different platforms of one seed get different layers (as real multi-arch images do).
    platform_salt = sum(ord(c) for c in architecture + (variant or "")) * 7919
    blobs += [layer_blob(seed * 1000 + 500 + i + platform_salt * 1000, size, layer_type, cache_dir)
              for i, size in enumerate(layers)]
    if created is None:
        created = _timestamp(EPOCH + seed * 3600)
    elif created.startswith("-") or created == "now":
        # relative to now: "-40d", "-12h", "now" (retention tests need images of a known age)
        created = _timestamp(int(time.time()) - _seconds(created.lstrip("-")))
    platform = {"architecture": architecture, "os": os_name}
    if variant:
        platform["variant"] = variant
    config_obj = {
        "architecture": architecture,
        "os": os_name,
        "created": created,    # "" (--created none): an image without a date; the key is left out below
        "config": {
            "Cmd": ["/layer-%d.bin" % seed],
            "Labels": dict(sorted((labels or {"dockyard.corpus.seed": str(seed)}).items())),
        },
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
        "history": [{"created": created, "created_by": "dockyard corpus layer %d" % i} for i in range(len(blobs))],
    }
    if variant:
        config_obj["variant"] = variant
    if not created:
        del config_obj["created"]
        for entry in config_obj["history"]:
            del entry["created"]
    config = _json_blob(config_obj, OCI_CONFIG if fmt == "oci" else DOCKER_CONFIG)
    manifest_obj: dict = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if fmt == "oci" else DOCKER_MANIFEST,
                          "config": config.descriptor(), "layers": [b.descriptor() for b in blobs]}
    manifest = _json_blob(manifest_obj, manifest_obj["mediaType"])
    return Image(manifest, config, blobs, platform)


def make_index(children: t.Sequence[Image], fmt: str = "oci", annotations: dict | None = None) -> Index:
    media_type = OCI_INDEX if fmt == "oci" else DOCKER_LIST
    obj: dict = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [dict(c.manifest.descriptor(), platform=c.platform) for c in children],
    }
    if annotations and fmt == "oci":
        obj["annotations"] = annotations
    return Index(_json_blob(obj, media_type), list(children))


def make_multiarch(seed: int, layers: t.Sequence[int] = (1024,), base_layers: t.Sequence[int] = (),
                   base_seed: int | None = None, fmt: str = "oci",
                   platforms: t.Sequence[str] = ("linux/amd64", "linux/arm64"),
                   labels: dict | None = None, cache_dir: str | None = None, created: str | None = None) -> Index:
    """An index with one child per platform (``os/arch[/variant]``), children in ``fmt`` too."""
    children = []
    for spec in platforms:
        parts = spec.split("/")
        children.append(make_image(seed, layers, base_layers, base_seed, fmt, parts[0], parts[1],
                                   parts[2] if len(parts) > 2 else None, labels, created=created,
                                   cache_dir=cache_dir))
    return make_index(children, fmt)


def _seconds(text: str) -> int:
    """``40d``, ``12h``, ``30m``, ``10s``, ``now`` -> seconds."""
    if text == "now":
        return 0
    match = re.match(r"^(\d+)([smhdw])$", text)
    if not match:
        raise ValueError("a relative time is -N followed by s, m, h, d or w (e.g. -40d), got %r" % text)
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


def _timestamp(seconds: int) -> str:
    import datetime  # pylint: disable=import-outside-toplevel
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- pushing -----------------------------------------------------------------------------------

class PushError(Exception):
    """The registry refused something."""


class Pusher:
    """Pushes blobs and manifests with plain HTTP calls (requests), Basic or Bearer auth."""

    def __init__(self, registry: str, username: str | None = None, password: str | None = None,
                 ca_cert: str | None = None, verify: bool = True, timeout: float = 300) -> None:
        if not re.match(r"^https?://", registry):
            registry = "https://" + registry
        self.base = registry.rstrip("/")
        self.session = requests.Session()
        # Passed on every request: a session-wide verify loses against REQUESTS_CA_BUNDLE.
        self.verify: bool | str = ca_cert if (ca_cert and verify) else verify
        self.auth = (username, password) if username else None
        self.timeout = timeout
        self._tokens: dict[str, str] = {}
        self._scheme: str | None = None
        self.stats = {"blobs_pushed": 0, "blobs_skipped": 0, "blobs_mounted": 0, "bytes_pushed": 0,
                      "manifests_pushed": 0}
        # digest -> a repository of this registry that has it, for cross-repository mounts
        self._known: dict[str, str] = {}

    # -- auth ------------------------------------------------------------------------------------

    def _auth_header(self, scope: str) -> dict[str, str]:
        if self._scheme == "basic" and self.auth:
            return {}
        if self._scheme == "bearer" and scope in self._tokens:
            return {"Authorization": "Bearer " + self._tokens[scope]}
        return {}

    def _challenge(self, response: requests.Response, scope: str) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        scheme, _sep, rest = header.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if scheme.lower() == "basic":
            if not self.auth:
                raise PushError("%s wants Basic credentials" % self.base)
            self._scheme = "basic"
            self.session.auth = self.auth
            return
        if scheme.lower() != "bearer":
            raise PushError("%s: unexpected challenge %r" % (self.base, header))
        self._scheme = "bearer"
        query = {"service": params.get("service", "")}
        scopes = scope.split()
        reply = self.session.get(params["realm"], params=dict(query, scope=scopes), auth=self.auth,
                                 timeout=self.timeout, verify=self.verify)
        if reply.status_code != 200:
            raise PushError("token server %s answered %d" % (params["realm"], reply.status_code))
        body = reply.json()
        self._tokens[scope] = body.get("token") or body["access_token"]

    def request(self, method: str, url: str, scope: str, **kwargs: t.Any) -> requests.Response:
        if not url.startswith("http"):
            url = self.base + url
        headers = dict(kwargs.pop("headers", {}))
        data = kwargs.pop("data", None)
        for attempt in range(2):
            body = data() if callable(data) else data
            try:
                response = self.session.request(method, url, headers=dict(headers, **self._auth_header(scope)),
                                                data=body, timeout=self.timeout, verify=self.verify, **kwargs)
            finally:
                if hasattr(body, "close"):
                    body.close()
            if response.status_code == 401 and attempt == 0:
                self._challenge(response, scope)
                continue
            return response
        return response

    # -- pushing ---------------------------------------------------------------------------------

    def blob_exists(self, repo: str, blob: Blob) -> bool:
        response = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, blob.digest), "repository:%s:pull,push" % repo)
        return response.status_code == 200

    def push_blob(self, repo: str, blob: Blob) -> bool:
        """Upload a blob unless the repository has it; True when uploaded.

        A blob this pusher already put into another repository of the registry is mounted
        from there (``POST ...?mount=&from=``) instead of uploaded again."""
        scope = "repository:%s:pull,push" % repo
        if self.blob_exists(repo, blob):
            self.stats["blobs_skipped"] += 1
            self._known.setdefault(blob.digest, repo)
            return False
        source = self._known.get(blob.digest)
        if source and source != repo:
            start = self.request("POST", "/v2/%s/blobs/uploads/" % repo, "%s repository:%s:pull" % (scope, source),
                                 params={"mount": blob.digest, "from": source})
            if start.status_code == 201:
                self.stats["blobs_mounted"] += 1
                return False
            # 202: the registry started an ordinary upload instead; carry on with it.
        else:
            start = self.request("POST", "/v2/%s/blobs/uploads/" % repo, scope)
        if start.status_code != 202:
            raise PushError("POST %s/blobs/uploads/: %d %s" % (repo, start.status_code, start.text[:300]))
        location = start.headers["Location"]
        if not location.startswith("http"):
            location = self.base + location
        location += ("&" if "?" in location else "?") + "digest=" + blob.digest
        done = self.request("PUT", location, scope, data=blob.open,
                            headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)})
        if done.status_code != 201:
            raise PushError("PUT blob %s to %s: %d %s" % (blob.digest, repo, done.status_code, done.text[:300]))
        self.stats["blobs_pushed"] += 1
        self.stats["bytes_pushed"] += blob.size
        self._known[blob.digest] = repo
        return True

    def push_manifest(self, repo: str, reference: str, manifest: Blob) -> str:
        response = self.request("PUT", "/v2/%s/manifests/%s" % (repo, reference), "repository:%s:pull,push" % repo,
                                data=manifest.data, headers={"Content-Type": manifest.media_type})
        if response.status_code != 201:
            raise PushError("PUT manifest %s:%s: %d %s" % (repo, reference, response.status_code, response.text[:300]))
        got = response.headers.get("Docker-Content-Digest")
        if got and got != manifest.digest:
            raise PushError("registry computed %s for manifest %s" % (got, manifest.digest))
        self.stats["manifests_pushed"] += 1
        return manifest.digest

    def push(self, item: Image | Index, repo: str, tags: t.Sequence[str] = ()) -> str:
        """Push an image or an index (children first, by digest), then tag it with every tag.

        Extra tags cost one manifest PUT each: the blobs are already there."""
        children = item.children if isinstance(item, Index) else [item]
        for child in children:
            for blob in child.blobs():
                self.push_blob(repo, blob)
            if isinstance(item, Index):
                self.push_manifest(repo, child.digest, child.manifest)
        if not tags:
            return self.push_manifest(repo, item.digest, item.manifest)
        for tag in tags:
            self.push_manifest(repo, tag, item.manifest)
        return item.digest


# ---- command line ------------------------------------------------------------------------------

def _build(args: argparse.Namespace) -> Image | Index:
    labels = dict(label.split("=", 1) for label in args.label) if args.label else None
    if args.multiarch:
        return make_multiarch(args.seed, args.layers, args.base_layers, args.base_seed, args.format,
                              args.platforms, labels, args.cache_dir, created=args.created)
    os_name, arch = args.platforms[0].split("/")[:2] if args.platforms else ("linux", "amd64")
    return make_image(args.seed, args.layers, args.base_layers, args.base_seed, args.format, os_name, arch,
                      labels=labels, created=args.created, cache_dir=args.cache_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deterministic test images")
    parser.add_argument("action", choices=("push", "describe"))
    parser.add_argument("--registry", help="http://host:port, https://host:port or host:port (HTTPS)")
    parser.add_argument("--repo", help="repository to push to")
    parser.add_argument("--tags", nargs="*", default=[], help="tags (none: push by digest only)")
    parser.add_argument("--tag-count", type=int, default=0, help="also push tags t0001..tNNNN (cheap: same manifest)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layers", type=int, nargs="*", default=[1024], help="sizes in bytes of the image's own layers")
    parser.add_argument("--base-seed", type=int, default=None, help="seed of the shared base layers")
    parser.add_argument("--base-layers", type=int, nargs="*", default=[], help="sizes of the shared base layers")
    parser.add_argument("--format", choices=("docker", "oci"), default=None,
                        help="manifest format (default: docker for an image, oci for --multiarch)")
    parser.add_argument("--multiarch", action="store_true", help="an index with one child per --platforms entry")
    parser.add_argument("--platforms", nargs="*", default=None, help="os/arch[/variant] (default linux/amd64 linux/arm64)")
    parser.add_argument("--label", action="append", default=[], help="config label key=value (repeatable)")
    parser.add_argument("--created", type=lambda v: "" if v == "none" else v, default=None,
                        help="the config's created: RFC 3339, relative to now (--created=-40d, -12h, now) or none "
                             "(default: 2024-01-01 + seed hours)")
    parser.add_argument("--username")
    parser.add_argument("--password-env", help="name of the environment variable holding the password")
    parser.add_argument("--ca-cert")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--cache-dir", help="where to keep generated layers (always used above 8 MiB)")
    args = parser.parse_args(argv)
    if args.format is None:
        args.format = "oci" if args.multiarch else "docker"
    if args.platforms is None:
        args.platforms = ["linux/amd64", "linux/arm64"] if args.multiarch else ["linux/amd64"]
    tags = list(args.tags) + ["t%04d" % i for i in range(1, args.tag_count + 1)]
    item = _build(args)
    result = item.describe()
    if args.action == "push":
        if not args.registry or not args.repo:
            parser.error("push needs --registry and --repo")
        password = os.environ.get(args.password_env) if args.password_env else None
        pusher = Pusher(args.registry, args.username, password, args.ca_cert, not args.insecure)
        try:
            pusher.push(item, args.repo, tags)
        except (PushError, requests.RequestException) as exc:
            sys.stderr.write("corpus push failed: %s\n" % exc)
            return 1
        result.update(repository=args.repo, tags=tags, stats=pusher.stats)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
