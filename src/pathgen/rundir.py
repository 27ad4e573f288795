"""The run directory: where every stage finds its inputs and leaves its outputs.

Stages never build paths by hand; they ask a :class:`RunDir`. Every file is written atomically
(temporary file in the same folder, then ``os.replace``), so a killed run never leaves a
half-written artifact that a later stage would trust. Stage completion is recorded as a small
JSON marker holding a fingerprint of the inputs and arguments: a second run with the same
fingerprint is skipped, a changed one redoes the stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    with atomic_path(path) as tmp:
        mode = "w" if isinstance(data, str) else "wb"
        kwargs: dict[str, Any] = {"encoding": "utf-8"} if isinstance(data, str) else {}
        with open(tmp, mode, **kwargs) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that insist on a file name of their own (pyarrow, PIL, numpy, tarfile).
    The temporary name keeps the final suffix so that format detection by extension still works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(table: Any, path: str | os.PathLike[str]) -> Path:
    """Write a pyarrow Table (or a pandas-free list of dicts) atomically as parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(table, list):
        table = pa.Table.from_pylist(table)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts: the identity of a stage's inputs and arguments."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Cheap identity of an input file (path, size, mtime) for stage fingerprints."""
    p = Path(path)
    try:
        st = p.stat()
        return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"path": str(p), "missing": True}


class RunDir:
    """Paths and stage bookkeeping of one run; creating it touches nothing on disk."""

    STAGES = ("tile", "embed", "select", "caption", "export")

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # -- artifacts -------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def slides(self) -> Path:
        return self.root / "slides.parquet"

    @property
    def tiles(self) -> Path:
        return self.root / "tiles.parquet"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def selected(self) -> Path:
        return self.root / "selected.parquet"

    @property
    def journal(self) -> Path:
        return self.root / "journal.sqlite"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def state(self) -> Path:
        """Stage markers live here, out of the way of the artifacts users open."""
        return self.root / ".pathgen"

    def ensure(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        return self

    def require(self, artifact: Path, stage: str) -> Path:
        """Fail with a message naming the stage to run first when an input artifact is missing."""
        if not artifact.exists():
            raise FileNotFoundError(f"{artifact} does not exist: run `pathgen {stage}` on {self.root} first")
        return artifact

    # -- stage status ----------------------------------------------------------------------
    def _marker(self, stage: str) -> Path:
        return self.state / f"{stage}.json"

    def stage_status(self, stage: str) -> dict[str, Any] | None:
        marker = self._marker(stage)
        if not marker.exists():
            return None
        try:
            return json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def stage_done(self, stage: str, fp: str) -> bool:
        status = self.stage_status(stage)
        return bool(status) and status.get("fingerprint") == fp

    def mark_stage(self, stage: str, fp: str, summary: dict[str, Any] | None = None) -> None:
        self.ensure()
        write_json(
            self._marker(stage),
            {
                "stage": stage,
                "fingerprint": fp,
                "schema_version": SCHEMA_VERSION,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "summary": summary or {},
            },
        )

    def clear_stage(self, stage: str) -> None:
        self._marker(stage).unlink(missing_ok=True)
