# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this module_utils file is internal to dockyard.registry and may change without notice.

"""The one model of OCI content: media types, manifests and indexes, descriptors, the blob walk,
platforms, index filtering, and the inspection of an image (size, platforms, created, labels).

The client builds a :class:`Manifest` from a registry's answer with :meth:`Manifest.from_answer`,
which is where a body that is not a JSON object, a ``Content-Type`` that is not a manifest's, or a
descriptor that is not one becomes a :class:`ServerError` naming the registry, the request and the
problem. Everything after that (the copy engine, ``registry_info``, the coming prune) reads the
parsed document and never parses JSON itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from ansible_collections.dockyard.registry.plugins.module_utils._errors import (
    InvalidInput,
    NotFound,
    ServerError,
)
from ansible_collections.dockyard.registry.plugins.module_utils._reference import is_digest

__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST",
    "MANIFEST_MEDIA_TYPES",
    "INDEX_MEDIA_TYPES",
    "SCHEMA1_MEDIA_TYPES",
    "FOREIGN_LAYER_TYPES",
    "IMAGE_CONFIG_MEDIA_TYPES",
    "Descriptor",
    "Manifest",
    "ImageInfo",
    "filter_index",
    "inspect_image",
    "parse_platform",
    "platform_matches",
    "sha256_digest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# What the client asks for (Accept) and what it expects back.
MANIFEST_MEDIA_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
SCHEMA1_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
# Layers that live outside registries (Windows base layers): never copied, never counted.
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)
IMAGE_CONFIG_MEDIA_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
# Content types that say nothing about the kind of manifest: the document decides.
_GENERIC_TYPES = ("", "application/json", "application/octet-stream", "text/plain", "binary/octet-stream")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _excerpt(raw: bytes) -> str:
    """The start of a body, printable, for an error message (registries send no secrets in bodies)."""
    text = raw[:80].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text + ("..." if len(raw) > 80 else "")


class Descriptor:
    """What points at content: digest, media type and size (and, in an index, the platform).

    A manifest HEAD answers with one too (``platform`` is None then). ``size`` is -1 when unknown.
    """

    __slots__ = ("digest", "media_type", "size", "platform", "urls")

    def __init__(self, digest: str, media_type: str, size: int = -1, platform: dict | None = None,
                 urls: list | None = None) -> None:
        self.digest = digest
        self.media_type = media_type
        self.size = size
        self.platform = platform
        self.urls = urls

    @classmethod
    def from_document(cls, data: Any, where: Callable[[], str]) -> "Descriptor":
        """A descriptor out of a manifest document; ServerError (saying ``where()``) when it is not one."""
        if not isinstance(data, dict):
            raise ServerError("%s: a descriptor is not a JSON object" % where())
        digest = data.get("digest")
        if not isinstance(digest, str) or not is_digest(digest):
            raise ServerError("%s: %r is not a digest" % (where(), digest))
        size = data.get("size", -1)
        if isinstance(size, bool) or not isinstance(size, int) or size < -1:
            raise ServerError("%s: size %r of %s is not a byte count" % (where(), size, digest))
        media_type = data.get("mediaType") or ""
        platform = data.get("platform")
        urls = data.get("urls")
        return cls(digest, media_type if isinstance(media_type, str) else "", size,
                   platform if isinstance(platform, dict) else None, urls if isinstance(urls, list) else None)

    @property
    def is_foreign(self) -> bool:
        return self.media_type in FOREIGN_LAYER_TYPES or bool(self.urls)

    def platform_info(self) -> dict:
        """``{os, architecture, variant, digest}`` as registry_info returns it."""
        platform = self.platform or {}
        return {"os": platform.get("os"), "architecture": platform.get("architecture"),
                "variant": platform.get("variant") or None, "digest": self.digest}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descriptor) and (self.digest, self.media_type, self.size) == (
            other.digest, other.media_type, other.size)

    def __hash__(self) -> int:
        return hash((self.digest, self.media_type, self.size))

    def __repr__(self) -> str:
        return "Descriptor(digest=%r, media_type=%r, size=%r)" % (self.digest, self.media_type, self.size)


class Manifest:
    """A manifest as the registry stores it: ``raw`` is what the digest is of, ``document`` its JSON.

    ``registry`` and ``reference`` (strings, optional) only serve error messages.
    """

    __slots__ = ("digest", "media_type", "raw", "document", "registry", "reference")

    def __init__(self, digest: str, media_type: str, raw: bytes, document: dict | None = None, *,
                 registry: str | None = None, reference: str | None = None) -> None:
        self.digest = digest
        self.raw = raw
        self.registry = registry
        self.reference = reference
        self.document = document if document is not None else _parse_json(raw, self._what)
        self.media_type = media_type or _media_type_of(self.document, self._location)

    @classmethod
    def from_answer(cls, raw: bytes, content_type: str | None, digest: str, *, registry: str,
                    reference: str | None, request: str) -> "Manifest":
        """The manifest a registry answered to ``request`` (``"GET /v2/.../manifests/..."``).

        Raises ServerError when the answer is an HTML page, has a Content-Type that is not a
        manifest's, is not a JSON object, or its media type contradicts its Content-Type.
        """
        header = (content_type or "").split(";")[0].strip().lower()

        def what() -> str:
            return "%s answered %s with %s" % (registry, request, "%s")

        looks_html = raw.lstrip()[:1] == b"<"
        if looks_html and (header == "text/html" or header in _GENERIC_TYPES):
            raise ServerError(what() % ("an HTML page (Content-Type %s) instead of a manifest: is a proxy or a login "
                                        "page in the way? It starts: %s" % (header or "none", _excerpt(raw))),
                              registry=registry, reference=reference)
        known = header in MANIFEST_MEDIA_TYPES or header in SCHEMA1_MEDIA_TYPES
        if not (known or header in _GENERIC_TYPES or header.endswith("+json") or header.endswith("+prettyjws")):
            raise ServerError(what() % ("Content-Type %s, which is not a manifest media type (asked for %s)"
                                        % (header, ", ".join(MANIFEST_MEDIA_TYPES))),
                              registry=registry, reference=reference)
        document = _parse_json(raw, lambda: what() % "a body")
        stated = document.get("mediaType")
        if known and isinstance(stated, str) and stated in MANIFEST_MEDIA_TYPES and stated != header:
            raise ServerError(what() % ("Content-Type %s, but the manifest says mediaType %s" % (header, stated)),
                              registry=registry, reference=reference)
        media_type = header if header not in _GENERIC_TYPES else ""
        return cls(digest, media_type, raw, document, registry=registry, reference=reference)

    def _what(self) -> str:
        return "manifest %s" % (self.reference or self.digest or "")

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def is_schema1(self) -> bool:
        return self.media_type in SCHEMA1_MEDIA_TYPES

    def json(self) -> dict:
        return self.document

    def descriptor(self) -> Descriptor:
        return Descriptor(self.digest, self.media_type, len(self.raw))

    def _error(self, text: str) -> ServerError:
        return ServerError("%s%s: %s" % (self._what(), " from %s" % self.registry if self.registry else "", text),
                           registry=self.registry, reference=self.reference)

    def _entries(self, key: str) -> list:
        entries = self.document.get(key)
        if entries is None:
            return []
        if not isinstance(entries, list):
            raise self._error("%r is not a list" % key)
        return entries

    def children(self) -> list[Descriptor]:
        """The manifests of an index, in index order (empty for an image manifest)."""
        return [Descriptor.from_document(entry, lambda i=i: "%s, manifests[%d]" % (self._location(), i))
                for i, entry in enumerate(self._entries("manifests"))]

    def config(self) -> Descriptor | None:
        config = self.document.get("config")
        if config is None:
            return None
        return Descriptor.from_document(config, lambda: "%s, config" % self._location())

    def blobs(self) -> list[Descriptor]:
        """The config and layers (and an artifact's ``blobs``) of an image manifest, each digest
        once, in document order; foreign layers (which live outside registries) left out."""
        found: list[Descriptor] = []
        seen = set()
        config = self.config()
        candidates = [config] if config is not None else []
        for key in ("layers", "blobs"):
            candidates.extend(Descriptor.from_document(entry, lambda k=key, i=i: "%s, %s[%d]"
                                                       % (self._location(), k, i))
                              for i, entry in enumerate(self._entries(key)))
        for descriptor in candidates:
            if descriptor.is_foreign or descriptor.digest in seen:
                continue
            seen.add(descriptor.digest)
            found.append(descriptor)
        return found

    def _location(self) -> str:
        return self._what() + (" from %s" % self.registry if self.registry else "")

    def filtered(self, platforms: str | Sequence[str] | None) -> "Manifest":
        """This index with only ``platforms`` (see :func:`filter_index`); itself when nothing is dropped."""
        raw = filter_index(self.raw, platforms, self.document)
        if raw is self.raw:
            return self
        return Manifest(sha256_digest(raw), self.media_type, raw, registry=self.registry, reference=self.reference)

    def __repr__(self) -> str:
        return "Manifest(digest=%r, media_type=%r, size=%d)" % (self.digest, self.media_type, len(self.raw))


def _parse_json(raw: bytes, what: Callable[[], str]) -> dict:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError("%s that is not JSON (%s); it starts: %s"
                          % (what(), str(exc).split(":", maxsplit=1)[0], _excerpt(raw) or "(empty)")) from None
    if not isinstance(data, dict):
        raise ServerError("%s that is JSON but not an object (a %s)" % (what(), type(data).__name__))
    return data


def _media_type_of(document: dict, what: Callable[[], str]) -> str:
    """The media type of a document whose Content-Type said nothing: its mediaType, else its shape."""
    stated = document.get("mediaType")
    if isinstance(stated, str) and stated:
        return stated
    if document.get("schemaVersion") == 1:
        return SCHEMA1_MEDIA_TYPES[0]
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document or "layers" in document:
        return OCI_MANIFEST
    raise ServerError("%s: neither its Content-Type nor its content says what kind of manifest it is" % what())


# --------------------------------------------------------------------------------------------
# Platforms and index filtering
# --------------------------------------------------------------------------------------------

def parse_platform(value: str) -> tuple[str, str, str | None]:
    """``"linux/arm64/v8"`` -> ``("linux", "arm64", "v8")``; the variant is optional."""
    parts = [p.strip() for p in str(value).split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidInput("invalid platform %r: expected os/arch or os/arch/variant, e.g. linux/amd64" % (value,))
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], parts[1], None)


def platform_matches(platform: dict | None, wanted: Sequence[tuple[str, str, str | None]]) -> bool:
    platform = platform or {}
    for w_os, w_arch, w_variant in wanted:
        if platform.get("os") == w_os and platform.get("architecture") == w_arch and (
                w_variant is None or w_variant == platform.get("variant")):
            return True
    return False


_ATTESTATION = "attestation-manifest"  # vnd.docker.reference.type of BuildKit's attestations


def _attests(descriptor: dict, digests: set) -> bool:
    """Whether an index entry is BuildKit's attestation manifest for one of ``digests``
    (annotations ``vnd.docker.reference.type`` and ``vnd.docker.reference.digest``)."""
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        return False
    return (annotations.get("vnd.docker.reference.type") == _ATTESTATION
            and annotations.get("vnd.docker.reference.digest") in digests)


def _all_platforms(platforms: str | Sequence[str] | None) -> bool:
    return platforms in (None, "all") or list(platforms) == ["all"]


def filter_index(raw: bytes, platforms: str | Sequence[str] | None, document: dict | None = None) -> bytes:
    """The index keeping only ``platforms``, and the attestation manifests of the images it keeps;
    ``raw`` itself (byte-exact) when nothing is dropped.

    A subset is a new document, hence a new digest (documented for ``platforms``). It is
    serialised compactly with the original key order, so the result is stable from run to
    run and a re-sync sees the same digest.
    """
    if _all_platforms(platforms):
        return raw
    wanted = [parse_platform(p) for p in platforms]  # type: ignore[union-attr]
    data = dict(document) if document is not None else _parse_json(raw, lambda: "an index")
    manifests = [d for d in data.get("manifests") or [] if isinstance(d, dict)]
    matching = [d for d in manifests if platform_matches(d.get("platform"), wanted)]
    # BuildKit's attestation manifests (provenance, SBOM) sit in the index as platform
    # unknown/unknown and name the image they describe: they stay with a platform that stays.
    described = {d.get("digest") for d in matching}
    matching_entries = {id(d) for d in matching}
    kept = [d for d in manifests if id(d) in matching_entries or _attests(d, described)]
    if not matching:
        found = sorted({"/".join(x for x in ((d.get("platform") or {}).get("os"),
                                             (d.get("platform") or {}).get("architecture"),
                                             (d.get("platform") or {}).get("variant")) if x)
                        for d in manifests})
        raise InvalidInput("no manifest in the index matches platforms %s (the index has: %s)"
                           % (", ".join(platforms), ", ".join(found) or "none"))  # type: ignore[arg-type]
    if len(kept) == len(manifests):
        return raw
    data["manifests"] = kept
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------------------------
# Inspection (registry_info; the coming prune reads created, labels and blobs from it)
# --------------------------------------------------------------------------------------------

class ImageInfo:
    """What an image is: ``size`` counts the manifest, child manifests present and every
    distinct blob once; ``blobs`` maps each blob digest the image references to its size."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.digest = manifest.digest
        self.media_type = manifest.media_type
        self.size = manifest.size
        self.platforms: list[dict] = []
        self.created: str | None = None
        self.labels: dict[str, str] = {}
        self.blobs: dict[str, int] = {}
        self.children: list[Descriptor] = []  # (an index's manifests)
        self.missing_children: list[str] = []  # digests an index names that the registry lacks
        # created of each child of an index (inspect_image(child_configs=True); registry_prune)
        self.child_created: dict[str, str | None] = {}

    def as_result(self) -> dict:
        """registry_info's keys."""
        return {"exists": True, "digest": self.digest, "media_type": self.media_type,
                "manifest": self.manifest.document, "size": self.size, "platforms": self.platforms,
                "created": self.created, "labels": self.labels}


def _image_config(client: Any, repository: str, config: Descriptor | None) -> dict:
    """The image configuration as a dict; {} when it is missing or is not an image configuration."""
    if config is None or config.media_type not in IMAGE_CONFIG_MEDIA_TYPES:
        return {}
    try:
        data = json.loads(client.blob_get(repository, config.digest).decode("utf-8"))
    except NotFound:
        return {}
    except (ValueError, UnicodeDecodeError):
        # digest-verified, so it is what the image says; just not an image configuration
        return {}
    return data if isinstance(data, dict) else {}


def inspect_image(client: Any, repository: str, reference: str | Manifest,
                  child_configs: bool = False) -> ImageInfo | None:
    """Size, platforms, created, labels and blobs of an image; None when it does not exist.

    ``client`` needs ``manifest_get`` and ``blob_get`` (a RegistryClient). ``reference`` is a
    tag, a digest, or a Manifest already fetched. One GET for the manifest, one per child
    manifest of an index, one for the configuration of a single-platform image (and, with
    ``child_configs``, one per child of an index, for ``child_created``).
    """
    if isinstance(reference, Manifest):
        manifest = reference
    else:
        try:
            manifest = client.manifest_get(repository, reference)
        except NotFound:
            return None
    info = ImageInfo(manifest)
    if manifest.is_index:
        info.children = manifest.children()
        info.platforms = [child.platform_info() for child in info.children]
        seen = set()
        for child in info.children:
            if child.digest in seen:
                continue
            seen.add(child.digest)
            try:
                child_manifest = client.manifest_get(repository, child.digest)
            except NotFound:
                # a partial copy of an index may lack some platforms: count what is there
                info.missing_children.append(child.digest)
                continue
            info.size += child_manifest.size
            if child_configs:
                info.child_created[child.digest] = _image_config(client, repository,
                                                                 child_manifest.config()).get("created") or None
            info.blobs.update((blob.digest, max(blob.size, 0)) for blob in child_manifest.blobs())
        info.size += sum(info.blobs.values())
        return info
    info.blobs = dict((blob.digest, max(blob.size, 0)) for blob in manifest.blobs())
    info.size += sum(info.blobs.values())
    image = _image_config(client, repository, manifest.config())
    info.created = image.get("created") or None
    labels = (image.get("config") or {}).get("Labels") if isinstance(image.get("config"), dict) else None
    info.labels = labels if isinstance(labels, dict) else {}
    if image.get("os") or image.get("architecture"):
        info.platforms = [{"os": image.get("os"), "architecture": image.get("architecture"),
                           "variant": image.get("variant") or None, "digest": manifest.digest}]
    return info
