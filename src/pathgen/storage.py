"""Object storage (``s3://``, ``gs://``, any fsspec URL) for the inputs and outputs that allow it.

Why fsspec: tiffslide reads slides through it (a URL or a file object), pyarrow and s3fs speak it,
and one URL syntax then reaches S3, GCS, Azure or an HTTP server. Which stages accept a URL is
written in the README (slides for tile/embed/caption/export through tiffslide; the export's
destination). The run directory itself stays on a filesystem every worker sees.

Credentials and endpoints come only from the environment and fsspec's own configuration
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL``, ``FSSPEC_S3_*``
variables, ``~/.config/fsspec``): they are never part of a URL that pathgen stores, and a URL
holding ``user:password@`` is refused, since slides.parquet and the config record slide paths.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from pathgen.redact import redact

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
LOCAL_SCHEMES = frozenset({"file", "local"})


class StorageError(ValueError):
    """A URL cannot be used (bad form, credentials in it, a filesystem fsspec does not know)."""


def is_url(path: str | os.PathLike[str] | None) -> bool:
    """True for a remote fsspec URL (``s3://bucket/key``); local paths and ``file://`` are not."""
    if path is None or isinstance(path, os.PathLike):
        return False
    match = _SCHEME.match(str(path))
    return bool(match) and match.group(1).lower() not in LOCAL_SCHEMES


def check_url(url: str) -> str:
    """``url`` unchanged when it may be stored; :class:`StorageError` when it holds credentials."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise StorageError(
            f"{parts.scheme}:// URL with credentials in it: give them through the environment "
            "(e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never in a path pathgen records"
        )
    return url


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)`` for ``url``; options come from the environment."""
    import fsspec

    check_url(url)
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"cannot open {url}: {exc}") from exc


def _unstrip(url: str, path: str) -> str:
    """The URL of ``path`` (as listed by the filesystem of ``url``) with ``url``'s scheme."""
    scheme = url.split("://", 1)[0]
    return f"{scheme}://{path.lstrip('/')}"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be reached (missing, no access, bad URL), or None."""
    try:
        fs, path = filesystem(url)
        fs.invalidate_cache()
        if not fs.exists(path):
            return "not found (no such object or prefix)"
    except StorageError as exc:
        return str(exc)
    except PermissionError as exc:
        return redact(f"access denied ({exc}); credentials come from the environment (AWS_*, fsspec config)")
    except Exception as exc:  # a botocore/network error: say which, it is the user's to fix
        return redact(f"cannot reach it: {type(exc).__name__}: {exc}")  # stored in slides.parquet
    return None


def is_dir(url: str) -> bool:
    """A prefix (``s3://bucket/slides/``) rather than one object."""
    fs, path = filesystem(url)
    return url.endswith("/") or fs.isdir(path)


def list_files(url: str) -> list[str]:
    """Every object under the prefix ``url``, as URLs, sorted (recursive)."""
    fs, path = filesystem(url)
    fs.invalidate_cache()
    return sorted(_unstrip(url, p) for p in fs.find(path))


def identity(url: str) -> dict[str, Any]:
    """Cheap identity of an object for stage fingerprints: the URL, size and ETag (or mtime)."""
    try:
        fs, path = filesystem(url)
        fs.invalidate_cache(path)
        info = fs.info(path)
    except Exception:  # missing, or unreachable: the fingerprint says so (the stage reports why)
        return {"path": url, "missing": True}
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return {"path": url, "size": int(info.get("size") or 0), "version": str(version)}


def head(url: str, n: int) -> tuple[int, bytes]:
    """``(size, first n bytes)`` of an object (a slide's magic number, without reading it all)."""
    fs, path = filesystem(url)
    size = int(fs.size(path) or 0)
    with fs.open(path, "rb", block_size=max(n, 1 << 16)) as handle:
        return size, handle.read(n)


def join(url: str, *parts: str) -> str:
    """``url`` joined with relative parts by ``/`` (object keys have no OS separator)."""
    out = url.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def parent(url: str) -> str:
    """The prefix an object lives under (a manifest's relative paths are resolved against it)."""
    return url.rstrip("/").rsplit("/", 1)[0]
