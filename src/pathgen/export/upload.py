"""Copy a finished dataset folder to object storage (``export.upload_to: s3://bucket/prefix``).

Why write locally first and upload after: the shards, index and card are written (and swapped in
whole) inside the run directory exactly as for a local export, so the bytes are the same, and the
upload is a separate, resumable step:

- an object appears whole or not at all: on object stores (S3, GCS, Azure) one PUT / one completed
  multipart upload is atomic; elsewhere the file is put under a temporary name and moved;
- the dataset's mark (``.pathgen-dataset.json``) is removed from the destination before anything
  changes there and uploaded last, so a reader that finds it finds a complete dataset;
- resumable: a ledger in ``RUN/.pathgen/upload/`` records, per object, the local file (size, mtime)
  it was uploaded from; an object whose ledger entry matches the local file and whose size in the
  bucket is right is skipped (the export hard-links unchanged shards, so they keep their mtime);
- objects pathgen uploaded earlier that the new export no longer has (fewer shards) are deleted;
  a prefix holding objects whose names are not a dataset's is refused before any work
  (:func:`upload_problem`), as a local folder with foreign files is.

Credentials come from the environment (see :mod:`pathgen.storage`), never from run files. A file
that fails to upload is an error row; the mark is then not uploaded and the next run retries.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from pathgen.export.dataset import DATASET_ENTRIES, MARKER
from pathgen.redact import redact
from pathgen.rundir import atomic_write
from pathgen.storage import filesystem

#: Filesystems whose single put is atomic (an object is visible only once complete).
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})


def ledger_path(state: Path, url: str) -> Path:
    """Where the upload ledger of ``url`` lives (one per destination)."""
    return state / "upload" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.json"


def _local_files(root: Path) -> list[str]:
    """Relative paths of the dataset's files: shards first, the mark last (its order of upload)."""
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    names = [n for n in names if not Path(n).name.startswith(".") or n == MARKER]
    return sorted(names, key=lambda n: (n == MARKER, not n.startswith("shards/"), n))


def _identity(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_ledger(path: Path, url: str) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data.get("files", {}) if data.get("url") == url else {}


def _remote_sizes(fs: Any, root: str) -> dict[str, int]:
    fs.invalidate_cache()
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    prefix = root.rstrip("/") + "/"
    return {k[len(prefix) :]: int(v.get("size") or 0) for k, v in found.items() if k.startswith(prefix)}


def _put(fs: Any, local: Path, remote: str, protocol: str) -> None:
    """Put one file so that the object appears whole or not at all."""
    if protocol in ATOMIC_PUT:
        fs.put_file(str(local), remote)
        return
    parent, name = remote.rsplit("/", 1) if "/" in remote else ("", remote)
    temp = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.partial" if parent else f".{name}.partial"
    fs.put_file(str(local), temp)
    fs.mv(temp, remote)


def upload_dataset(local: Path, url: str, state: Path) -> dict[str, Any]:
    """Upload the dataset folder ``local`` to ``url``; returns counts and per-file error rows.

    Keys: url, uploaded, skipped, deleted, failed, errors (``[{file, error}]``), complete.
    """
    from pathgen.executors.progress import progress

    fs, root = filesystem(url)
    protocol = url.split("://", 1)[0].lower()
    root = root.rstrip("/")
    ledger_file = ledger_path(state, url)
    ledger = _read_ledger(ledger_file, url)
    remote = _remote_sizes(fs, root)
    files = _local_files(local)
    todo = [
        n for n in files if not (ledger.get(n) == _identity(local / n) and remote.get(n) == ledger[n]["size"])
    ]
    gone = set(ledger) - set(files)
    stale = sorted(n for n in gone if n in remote)
    for name in gone - set(stale):  # deleted by someone else already: forget it
        ledger.pop(name)
    result: dict[str, Any] = {"url": url, "uploaded": 0, "skipped": len(files) - len(todo), "deleted": 0}
    errors: list[dict[str, str]] = []

    def save() -> None:
        atomic_write(ledger_file, json.dumps({"url": url, "files": ledger}, sort_keys=True))

    if (todo or stale) and MARKER in remote:  # the destination is about to change: unmark it first
        fs.rm_file(f"{root}/{MARKER}")
        ledger.pop(MARKER, None)
        save()
        if MARKER not in todo:
            todo.append(MARKER)
    with progress(f"upload to {url}", len(todo)) as bar:
        for name in todo:
            if name == MARKER and errors:
                break  # an incomplete upload stays unmarked
            try:
                _put(fs, local / name, f"{root}/{name}", protocol)
            except Exception as exc:  # one file's failure is its row; the next run retries it
                errors.append({"file": name, "error": redact(f"{type(exc).__name__}: {exc}")})
                bar.advance(name, failed=True)
                continue
            ledger[name] = _identity(local / name)
            result["uploaded"] += 1
            save()
            bar.advance(name)
    for name in stale:
        try:
            fs.rm_file(f"{root}/{name}")
            ledger.pop(name, None)
            result["deleted"] += 1
        except Exception as exc:
            errors.append(
                {"file": name, "error": redact(f"cannot delete stale object: {type(exc).__name__}: {exc}")}
            )
    save()
    result.update(failed=len(errors), errors=errors, complete=not errors)
    return result


def upload_problem(url: str) -> str | None:
    """Why ``url`` cannot be an export destination (checked before the export does any work)."""
    from pathgen.storage import StorageError, is_url

    if not is_url(url):
        return f"{url!r} is not a URL (s3://bucket/prefix, gs://..., any fsspec URL)"
    try:
        fs, root = filesystem(url)
    except StorageError as exc:
        return str(exc)
    bucket = root.split("/", 1)[0]
    try:
        if bucket and not fs.exists(bucket):
            return f"the bucket {bucket!r} does not exist (or the credentials cannot see it)"
        names = {key.split("/", 1)[0] for key in _remote_sizes(fs, root.rstrip("/"))}
    except Exception as exc:
        return redact(f"cannot reach {url}: {type(exc).__name__}: {exc}")
    foreign = sorted(n for n in names if n not in DATASET_ENTRIES and not n.endswith(".partial"))
    if foreign:  # the upload replaces and deletes objects under the prefix: only a dataset's own
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        return (
            f"the prefix holds objects pathgen did not write ({shown}); an export replaces what is "
            "under its prefix, so choose a new or empty prefix"
        )
    return None
