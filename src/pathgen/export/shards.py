"""Webdataset shards in the img2dataset convention: ``NNNNN.tar`` holding ``KEY.jpg/.txt/.json``.

Why this layout: it is what open_clip_train, webdataset, Hugging Face ``datasets`` and img2dataset
already read, so a pathgen dataset trains without conversion. Shards are byte-for-byte
deterministic (fixed member order, mtime, owner and mode), so re-exporting the same pairs yields
identical files and a per-shard fingerprint lets a re-run keep every shard that is already right.
Beside the tars we keep ``sizes.json`` (open_clip_train reads it to know the sample count) and one
``NNNNN_stats.json`` per shard, written last, that marks the shard finished.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pathgen.rundir import atomic_path, file_mode, fingerprint, write_json

#: mtime stamped on every tar member (2024-01-01T00:00:00Z): deterministic bytes, plausible dates.
TAR_MTIME = 1704067200
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_key(text: str, max_len: int = 120) -> str:
    """A webdataset key from any id: only ``[A-Za-z0-9_-]`` (no dot: webdataset splits keys there).

    Lossy ids (any character replaced, or truncated) get a short hash of the original appended,
    so two ids that sanitise alike still get distinct keys, and the same id always the same key.
    """
    cleaned = _UNSAFE.sub("_", text).strip("_") or "sample"
    if cleaned == text and len(cleaned) <= max_len:
        return cleaned
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[: max_len - 9]}_{digest}"


def tile_key(slide_id: str, x: int, y: int, size: int) -> str:
    """The key of a patch: the sanitised slide id, then level-0 ``x_y_size`` (readable and stable)."""
    return f"{safe_key(slide_id)}_{int(x)}_{int(y)}_{int(size)}"


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """Baseline JPEG without EXIF or timestamps: the same pixels always give the same bytes."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=False, subsampling=0)
    return buf.getvalue()


@dataclass
class Sample:
    """One pair ready for a shard: ``image`` already encoded as JPEG bytes."""

    key: str
    image: bytes
    caption: str
    meta: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(self.key.encode())
        h.update(self.image)
        h.update(self.caption.encode())
        h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]


def shard_name(index: int) -> str:
    return f"{index:05d}.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def wire_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``KEY.json`` with one flat, type-stable schema: lists become JSON strings, nulls become "".

    Hugging Face ``datasets`` infers a shard's schema from its first five samples; a field that is
    null or an empty list there and filled later (an mpp, revision edits, flags) makes loading fail.
    So ``edits`` and ``flags`` are JSON-encoded strings (``json.loads`` them), unknown strings are
    "" and nested mappings (models, prompt versions) hold strings only. Numbers are never null
    (callers write ``mpp`` 0.0 with ``mpp_source`` "none" when unknown).
    """
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, (list, tuple)):
            out[key] = json.dumps(list(value), ensure_ascii=False, sort_keys=True)
        elif isinstance(value, dict):
            out[key] = {k: "" if v is None else v for k, v in value.items()}
        else:
            out[key] = "" if value is None else value
    return out


def meta_json(meta: dict[str, Any]) -> bytes:
    return (json.dumps(wire_meta(meta), sort_keys=True, ensure_ascii=False, default=str) + "\n").encode(
        "utf-8"
    )


def write_shard(path: Path, samples: list[Sample]) -> None:
    """Write one tar atomically: members ``KEY.jpg, KEY.json, KEY.txt`` per sample, in sample order."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for s in samples:
            _add(tar, f"{s.key}.jpg", s.image)
            _add(tar, f"{s.key}.json", meta_json(s.meta))
            _add(tar, f"{s.key}.txt", s.caption.encode("utf-8"))


@dataclass
class ShardResult:
    shards: list[str]
    sizes: dict[str, int]
    written: int
    kept: int


def write_shards(
    samples: Iterable[Sample], out_dir: Path, per_shard: int, reuse: Path | None = None
) -> ShardResult:
    """Cut ``samples`` into shards of ``per_shard``; keep shards whose stats fingerprint matches.

    A matching shard is kept where it is, or, when it lies in ``reuse`` (the previous version of a
    dataset being rewritten into a new folder), hard-linked (else copied) from there. Returns shard
    names in order, their sizes, and how many shards were (re)written or kept. Stale shards from an
    earlier, larger export are removed so the folder holds exactly this set.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    sizes: dict[str, int] = {}
    written = kept = 0
    for index, chunk in enumerate(_chunks(samples, per_shard)):
        if put_shard(out_dir, index, chunk, reuse=reuse):
            kept += 1
        else:
            written += 1
        names.append(shard_name(index))
        sizes[shard_name(index)] = len(chunk)
    _remove_stale(out_dir, set(names))
    write_json(out_dir / "sizes.json", sizes)
    return ShardResult(shards=names, sizes=sizes, written=written, kept=kept)


def put_shard(out_dir: Path, index: int, samples: list[Sample], reuse: Path | None = None) -> bool:
    """Make shard ``index`` of ``out_dir`` hold ``samples``; True when an identical shard was kept.

    The one place a shard is decided and written, whether shards are written in a row or each by
    its own task: a shard whose stats fingerprint matches is kept where it is, or hard-linked
    (else copied) from ``reuse``; otherwise the tar is written and its stats file last.
    """
    name = shard_name(index)
    fp = fingerprint([s.digest() for s in samples])
    stats_name = f"{index:05d}_stats.json"
    stats_path = out_dir / stats_name
    if (out_dir / name).exists() and _stats_fp(stats_path) == fp:
        return True
    stats_path.unlink(missing_ok=True)
    if reuse is not None and (reuse / name).exists() and _stats_fp(reuse / stats_name) == fp:
        _link_or_copy(reuse / name, out_dir / name)
        _link_or_copy(reuse / stats_name, stats_path)
        return True
    write_shard(out_dir / name, samples)
    write_json(stats_path, {"shard": name, "count": len(samples), "fingerprint": fp})
    return False


def put_placeholder(out_dir: Path, index: int) -> None:
    """An empty shard in place of one whose task failed, so the shard numbers stay contiguous.

    Its stats carry no fingerprint, so it is never kept by a later export: that one writes it.
    """
    name = shard_name(index)
    (out_dir / f"{index:05d}_stats.json").unlink(missing_ok=True)
    write_shard(out_dir / name, [])
    write_json(out_dir / f"{index:05d}_stats.json", {"shard": name, "count": 0, "fingerprint": None})


def remove_partial_files(out_dir: Path) -> None:
    """Remove temporary files of shard writes that never finished (a worker killed mid-write)."""
    for tmp in out_dir.glob(".*.tmp*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` with the bytes of ``src``: a hard link (free) where possible, else a copy.

    Either way ``dst`` gets the mode the umask gives new files, so a shard kept from an export
    written under another umask (or by an older pathgen that wrote 0600) is not kept private.
    """
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        if stat.S_IMODE(tmp.stat().st_mode) != file_mode():
            try:
                os.chmod(tmp, file_mode())
            except PermissionError:  # a linked file of another owner: copy it instead
                tmp.unlink()
                shutil.copyfile(src, tmp)
                os.chmod(tmp, file_mode())


def _stats_fp(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    for tar in out_dir.glob("[0-9][0-9][0-9][0-9][0-9].tar"):
        if tar.name not in keep:
            tar.unlink(missing_ok=True)
            (out_dir / f"{tar.stem}_stats.json").unlink(missing_ok=True)


def _chunks(items: Iterable[Sample], n: int) -> Iterator[list[Sample]]:
    chunk: list[Sample] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def brace_pattern(out_dir: Path, shards: list[str]) -> str:
    """``DIR/{00000..00007}.tar``: the shard list as open_clip_train's ``--train-data`` wants it."""
    if not shards:
        return ""
    if len(shards) == 1:
        return str(out_dir / shards[0])
    first, last = Path(shards[0]).stem, Path(shards[-1]).stem
    return str(out_dir / f"{{{first}..{last}}}.tar")


def iter_tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group a tar's regular files by key (webdataset rules: key = name up to the first dot).

    Members are read into memory, never extracted, so a hostile name cannot write anywhere; names
    that are absolute or contain ``..`` are still yielded under the key ``""`` with the raw name in
    ``{"__unsafe__": name}`` so callers can count and report them.
    """
    current: str | None = None
    fields: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            if name.startswith("/") or ".." in Path(name).parts or "\\" in name:
                yield "", {"__unsafe__": name.encode("utf-8", "replace")}
                continue
            base = name.rsplit("/", 1)[-1]
            prefix = name[: len(name) - len(base)]
            if "." not in base:
                continue
            stem, ext = base.split(".", 1)
            key = prefix + stem
            if key != current:
                if current is not None and fields:
                    yield current, fields
                current, fields = key, {}
            handle = tar.extractfile(member)
            fields[ext.lower()] = handle.read() if handle else b""
    if current is not None and fields:
        yield current, fields
