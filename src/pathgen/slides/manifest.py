"""From what the user typed to a list of slide records: files, folders, or a manifest table.

A manifest (CSV or parquet) has a ``path`` column and optionally ``slide_id``, ``project``,
``report``, ``file_id``; every other column travels with the slide into slides.parquet. Relative
paths in a manifest are resolved against the manifest's folder.

What is checked here, before any work:

- every input typed (command line or ``slides:`` of a config) must exist: a missing file or folder,
  a dangling symlink or a symlink loop is an :class:`InputError` naming each of them, since
  tiling the rest and reporting it afterwards hides a typo behind minutes of work;
- slide ids must be unique, because tile ids are ``<slide_id>:x:y:size`` and every later stage
  keys on them. Ids written in a manifest are the user's: a repeated one is an InputError naming
  its rows. Ids taken from file names are renamed ``<stem>-<n>`` (n not used by any other id)
  with a warning in the slide's row.

Problems of one slide (a manifest row whose file is missing, a folder without slides, a file of a
format no reader opens) become records with ``input_error`` / ``input_skip``, so the stage lists
them instead of silently tiling less than the user asked for.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from pathgen.sample_data import resolve_input
from pathgen.slides.backends import stat_problem
from pathgen.slides.readers import SLIDE_EXTENSIONS, UNSUPPORTED_FORMATS, unsupported_reason
from pathgen.storage import is_url

MANIFEST_EXTENSIONS = frozenset({".csv", ".parquet", ".pq"})
RESERVED = frozenset({"path", "slide_id"})
_INTERNAL = ("_origin", "_explicit_id")


class InputError(ValueError):
    """The inputs themselves are wrong (missing, looping, ambiguous ids): nothing is tiled."""


def _record(path: str, slide_id: str | None = None, error: str | None = None, **extra: Any) -> dict[str, Any]:
    """One slide record; ``path`` becomes absolute so that later stages (export reads the patches
    again) work from any directory. ``os.path.abspath`` rather than ``resolve``: a symlinked slide
    keeps its own name, so the slide id (the file's stem) is the same as before."""
    skip = unsupported_reason(path) if error is None else None
    rec: dict[str, Any] = {
        "path": path if is_url(path) else os.path.abspath(path),  # a URL is kept as written
        "slide_id": slide_id or Path(path).stem or path,
        "input_error": error,
        "input_skip": skip,
        "input_warning": None,
        "_explicit_id": False,
        "_origin": path,
    }
    rec.update(extra)
    return rec


def _scan_dir(root: Path) -> list[Path]:
    """Slide-like files under ``root`` (recursive, sorted): readable formats and unsupported ones."""
    wanted = SLIDE_EXTENSIONS | UNSUPPORTED_FORMATS.keys()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in wanted:
                found.append(Path(dirpath) / name)
    return found


def _scan_url(url: str) -> list[str]:
    """Slide-like objects under the prefix ``url`` (recursive, sorted), as URLs."""
    from pathgen.storage import list_files

    wanted = SLIDE_EXTENSIONS | UNSUPPORTED_FORMATS.keys()
    return [u for u in list_files(url) if Path(u).suffix.lower() in wanted]


def _read_manifest(path: Path | str) -> list[dict[str, Any]]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if is_url(path):  # a manifest in storage: read through fsspec; relative paths are keys beside it
        from pathgen.storage import filesystem

        fs, inner = filesystem(str(path))
        with fs.open(inner, "rb") as handle:
            csv = str(path).lower().endswith(".csv")
            table = pcsv.read_csv(handle) if csv else pq.read_table(handle)
    elif path.suffix.lower() == ".csv":
        table = pcsv.read_csv(path)
    else:
        table = pq.read_table(path)
    if "path" not in table.column_names:
        raise ValueError(f"manifest {path} has no 'path' column (columns: {', '.join(table.column_names)})")
    rows = table.to_pylist()
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        raw = row.get("path")
        extra = {k: v for k, v in row.items() if k not in RESERVED}
        sid = row.get("slide_id")
        sid = str(sid).strip() if sid is not None and str(sid).strip() else None
        if raw is None or not str(raw).strip():
            rec = _record(f"{path}#row{i}", sid, "manifest row has an empty path", **extra)
        elif is_url(str(raw)) or is_url(path):
            from pathgen.storage import join, parent, url_problem

            url = str(raw) if is_url(str(raw)) else join(parent(str(path)), str(raw))
            rec = _record(url, sid, url_problem(url), **extra)
        else:
            p = Path(str(raw)).expanduser()
            if not p.is_absolute():
                p = path.parent / p
            rec = _record(str(p), sid, stat_problem(p), **extra)
        rec["_origin"] = f"{Path(str(path)).name} row {i}"
        rec["_explicit_id"] = sid is not None
        out.append(rec)
    return out


def check_inputs(inputs: list[str]) -> None:
    """Raise :class:`InputError` naming every typed input that cannot be reached; nothing else."""
    from pathgen.storage import url_problem

    problems = []
    for item in inputs:
        if is_url(item):
            problem = url_problem(item)
        else:
            problem = stat_problem(Path(resolve_input(item)).expanduser())
        if problem is not None:
            problems.append(f"{item}: {problem}")
    if problems:
        raise InputError("cannot read the input(s), nothing was tiled:\n  " + "\n  ".join(problems))


def expand_inputs(inputs: list[str]) -> list[dict[str, Any]]:
    """Slide records ``{path, slide_id, input_error, <manifest columns>}`` in input order.

    Raises :class:`InputError` (a ``ValueError``) for an input that cannot be reached, a malformed
    manifest or a manifest slide_id given twice (bad configuration fails at once); every per-slide
    problem is an ``input_error`` (or ``input_skip``) in the record.
    """
    check_inputs(inputs)
    records: list[dict[str, Any]] = []
    for item in inputs:
        if is_url(item):
            records.extend(_expand_url(item))
            continue
        p = Path(resolve_input(item)).expanduser()  # `pathgen:sample`: the packaged manifest
        if p.is_dir() and p.suffix.lower() != ".mrxs":
            slides = _scan_dir(p)
            if not slides:
                known = ", ".join(sorted(SLIDE_EXTENSIONS))
                records.append(_record(str(p), p.name or str(p), f"directory contains no slides ({known})"))
            records.extend(_record(str(s), error=stat_problem(s)) for s in slides)
        elif p.suffix.lower() in MANIFEST_EXTENSIONS and p.is_file():
            records.extend(_read_manifest(p))
        else:
            records.append(_record(str(p)))
    out = _unique_ids(_drop_repeated_paths(records))
    for rec in out:
        for key in _INTERNAL:
            rec.pop(key, None)
    return out


def _expand_url(url: str) -> list[dict[str, Any]]:
    """The records of one URL input: a prefix of slides, a manifest, or one slide."""
    from pathgen.storage import check_url, is_dir

    check_url(url)
    suffix = Path(url.rstrip("/")).suffix.lower()
    if suffix in MANIFEST_EXTENSIONS and not url.endswith("/"):
        return _read_manifest(url)
    if suffix not in SLIDE_EXTENSIONS and is_dir(url):
        slides = _scan_url(url)
        if not slides:
            known = ", ".join(sorted(SLIDE_EXTENSIONS))
            return [_record(url, Path(url.rstrip("/")).name or url, f"prefix contains no slides ({known})")]
        return [_record(s) for s in slides]
    return [_record(url)]


def _drop_repeated_paths(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same readable file given twice (under the same id, or without one) is listed once."""
    seen: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for rec in records:
        first = seen.get(rec["path"])
        if (
            first is not None
            and rec["input_error"] is None
            and (not rec["_explicit_id"] or rec["slide_id"] == first["slide_id"])
        ):
            continue
        seen.setdefault(rec["path"], rec)
        out.append(rec)
    return out


def _unique_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make every slide id unique before work: tile ids, embeddings and selections key on it.

    A manifest id used twice is an error naming its rows (only the user knows which is meant).
    An id taken from a file name that is already used is renamed ``<id>-<n>``, with the smallest
    n that no other slide has or will have, so that ``A, A, A-1`` become ``A, A-2, A-1``.
    """
    explicit: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        if rec["_explicit_id"]:
            explicit[rec["slide_id"]].append(rec["_origin"])
    clashes = {sid: where for sid, where in explicit.items() if len(where) > 1}
    if clashes:
        lines = [f"slide_id {sid!r}: {', '.join(where)}" for sid, where in clashes.items()]
        raise InputError(
            "duplicate slide_id in the manifest (tile ids are <slide_id>:x:y:size, so each slide "
            "needs its own):\n  " + "\n  ".join(lines)
        )
    reserved = {rec["slide_id"] for rec in records}  # every id as given, so a rename never takes one
    used: dict[str, str] = {sid: where[0] for sid, where in explicit.items()}
    for rec in records:
        sid = rec["slide_id"]
        if rec["_explicit_id"]:
            continue
        if sid not in used:
            used[sid] = rec["_origin"]
            continue
        n = 1
        while f"{sid}-{n}" in reserved or f"{sid}-{n}" in used:
            n += 1
        new = f"{sid}-{n}"
        rec["input_warning"] = (
            f"slide_id {sid!r} is already used by {used[sid]}: this slide is renamed {new!r}"
        )
        rec["slide_id"] = new
        used[new] = rec["_origin"]
    return records
