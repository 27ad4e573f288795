"""Readers of existing image-caption datasets, each yielding the same raw record.

Formats (``FORMATS``):

- ``quilt``: the Quilt-1M lookup CSV (``caption, image_path, subset, pathology, ...``); image paths are
  relative to ``images`` (the folder holding Quilt-1M's ``quilt_1m/`` images).
- ``table``: any CSV or parquet with an image column (a path relative to ``images``, or encoded bytes,
  or a Hugging Face ``{"bytes", "path"}`` struct) and a text column.

Image paths are confined to the image folder (``images``; for tables without it, the table's
folder): a path that leaves it (``..``, a symlink pointing out, an absolute path elsewhere) is a
per-record problem, never read, so a table cannot make pathgen copy ``/etc/shadow`` or a
neighbour's files into a dataset. Absolute paths outside the folder are read only with
``allow_absolute_paths``. What a record keeps (``image_path``) is relative to the image folder;
only an allowed absolute path outside it is kept as given.
- ``arch``: ARCH's ``captions.json`` (``{"0": {"caption", "uuid", "figure_id"?, "letter"?}}``) with
  images named ``<uuid>.<png|jpg|jpeg>`` in ``images`` (default: ``images/`` beside the JSON).
- ``wds``: existing webdataset shards (a tar, a folder of tars, or a brace pattern).

Readers never decode images (the ingester does, to hash and check them) and never raise on a bad
record: they yield it with ``problem`` set, so every skip is counted with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathgen.export.shards import IMAGE_EXTS, iter_tar_samples

FORMATS = ("quilt", "table", "arch", "wds")
_IMAGE_COLS = ("image_path", "image", "img", "filepath", "file", "path", "jpg", "png")
_TEXT_COLS = ("caption", "text", "txt", "title", "description")


@dataclass
class RawPair:
    """One record of an external dataset before checks: where its image is and what its text says."""

    id: str
    caption: str | None
    path: Path | None = None
    data: bytes | None = None
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _inside(root: Path, full: Path) -> bool:
    return full == root or root in full.parents


def resolve_image(
    root: Path, value: str, allow_absolute: bool = False
) -> tuple[Path | None, str | None, str]:
    """``(file, problem, recorded)`` for an image path of a record, read against the image folder ``root``.

    Everything is resolved (``..`` and symlinks included) before the containment check. Inside the
    folder: the file and its path relative to the folder. A relative path that leaves it:
    ``path_escapes_image_root``. An absolute path elsewhere: ``absolute_path_refused`` unless
    ``allow_absolute`` (then read where it points and recorded as given).
    """
    root = Path(root).resolve()
    given = Path(value)
    full = (root / given).resolve()  # an absolute ``given`` replaces root
    if _inside(root, full):
        return full, None, full.relative_to(root).as_posix() if full != root else "."
    if not given.is_absolute():
        return None, "path_escapes_image_root", value
    if allow_absolute:
        return full, None, value
    return None, "absolute_path_refused", value


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise ValueError(f"{what} column {wanted!r} not found; columns: {', '.join(columns)}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(f"no {what} column found (tried {', '.join(candidates)}); columns: {', '.join(columns)}")


def read_table(
    path: Path,
    images: Path | None,
    image_col: str | None = None,
    text_col: str | None = None,
    allow_absolute_paths: bool = False,
) -> Iterator[RawPair]:
    """CSV or parquet, one pair per row; columns are checked now, rows are read lazily.

    Image paths are read inside ``images`` (default: the table's folder), see :func:`resolve_image`.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    table = pq.read_table(path) if path.suffix.lower() in (".parquet", ".pq") else pacsv.read_csv(path)
    columns = table.column_names
    icol = _pick(columns, image_col, _IMAGE_COLS, "image")
    tcol = _pick(columns, text_col, _TEXT_COLS, "text")
    return _table_rows(table, icol, tcol, images or path.parent, allow_absolute_paths)


def _table_rows(table: Any, icol: str, tcol: str, images: Path, allow_absolute: bool) -> Iterator[RawPair]:
    for i, row in enumerate(table.to_pylist()):
        # Extras as strings ("" for empty cells): one schema for every sample of the set.
        extra = {
            k: "" if v is None else str(v)
            for k, v in row.items()
            if k not in (icol, tcol) and (v is None or isinstance(v, (str, int, float)))
        }
        value, caption = row.get(icol), row.get(tcol)
        caption = None if caption is None else str(caption)
        rid = f"{i:08d}"
        if isinstance(value, dict):  # Hugging Face Image feature: {"bytes": ..., "path": ...}
            value = value.get("bytes") or value.get("path")
        if isinstance(value, (bytes, bytearray)):
            yield RawPair(rid, caption, data=bytes(value), extra=extra)
        elif isinstance(value, str) and value.strip():
            full, problem, recorded = resolve_image(images, value.strip(), allow_absolute)
            yield RawPair(rid, caption, path=full, problem=problem, extra={**extra, "image_path": recorded})
        else:
            yield RawPair(rid, caption, problem="missing_image", extra=extra)


def read_quilt(path: Path, images: Path | None, allow_absolute_paths: bool = False) -> Iterator[RawPair]:
    """The Quilt-1M lookup CSV: ``caption`` and ``image_path`` columns, the rest kept as extra."""
    return read_table(path, images, "image_path", "caption", allow_absolute_paths)


def read_arch(path: Path, images: Path | None) -> Iterator[RawPair]:
    """Validates the JSON now; yields records lazily."""
    path = Path(path)
    if path.is_dir():
        path = path / "captions.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: ARCH captions.json is a mapping of index -> record")
    return _arch_rows(data, images or path.parent / "images")


def _arch_rows(data: dict[str, Any], images: Path) -> Iterator[RawPair]:
    by_stem: dict[str, Path] = {}
    escaping: set[str] = set()  # symlinks in the image folder that point out of it
    if images.is_dir():
        root = images.resolve()
        for f in sorted(images.iterdir()):
            if f.suffix.lower().lstrip(".") in IMAGE_EXTS:
                if _inside(root, f.resolve()):
                    by_stem.setdefault(f.stem, f.resolve())
                else:
                    escaping.add(f.stem)
    for idx in sorted(data, key=lambda k: (len(k), k)):
        rec = data[idx] if isinstance(data[idx], dict) else {}
        uuid = str(rec.get("uuid") or "")
        extra = {k: str(rec.get(k) or "") for k in ("figure_id", "letter")}
        caption = rec.get("caption")
        caption = None if caption is None else str(caption)
        found = by_stem.get(uuid) if uuid else None
        problem = None if found else ("path_escapes_image_root" if uuid in escaping else "missing_image")
        yield RawPair(uuid or f"idx{idx}", caption, path=found, problem=problem, extra=extra)


def _expand(spec: str) -> list[Path]:
    p = Path(spec)
    if p.is_dir():
        return sorted(p.glob("*.tar"))
    if "{" in spec:
        from braceexpand import braceexpand

        return [Path(s) for s in braceexpand(spec)]
    return [p]


def read_wds(spec: str | Path) -> Iterator[RawPair]:
    for tar in _expand(str(spec)):
        if not tar.exists():
            yield RawPair(tar.name, None, problem="missing_shard")
            continue
        try:
            for key, fields in iter_tar_samples(tar):
                if "__unsafe__" in fields:
                    name = fields["__unsafe__"].decode("utf-8", "replace")
                    yield RawPair(name, None, problem="unsafe_member_name", extra={"shard": tar.name})
                    continue
                image = next((fields[e] for e in IMAGE_EXTS if e in fields), None)
                text = fields.get("txt")
                caption = text.decode("utf-8", "replace") if text is not None else None
                if caption is None and "json" in fields:
                    try:
                        caption = json.loads(fields["json"]).get("caption")
                    except (ValueError, AttributeError):
                        caption = None
                rid = f"{tar.stem}_{key}"
                if image is None:
                    yield RawPair(rid, caption, problem="missing_image", extra={"shard": tar.name})
                else:
                    yield RawPair(rid, caption, data=image, extra={"shard": tar.name, "orig_key": key})
        except Exception as exc:  # a truncated or corrupt tar: count it, keep what was read
            yield RawPair(tar.name, None, problem=f"corrupt_shard: {exc}")


def read_source(
    fmt: str,
    path: str | Path,
    images: Path | None = None,
    image_col: str | None = None,
    text_col: str | None = None,
    allow_absolute_paths: bool = False,
) -> Iterator[RawPair]:
    """The records of one source; ``allow_absolute_paths`` lets quilt/table rows read images
    anywhere by absolute path (arch finds images by name, wds holds them: neither takes paths)."""
    if fmt == "quilt":
        return read_quilt(Path(path), images, allow_absolute_paths)
    if fmt == "table":
        return read_table(Path(path), images, image_col, text_col, allow_absolute_paths)
    if fmt == "arch":
        return read_arch(Path(path), images)
    if fmt == "wds":
        return read_wds(path)
    raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
