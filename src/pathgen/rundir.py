"""The run directory: where every stage finds its inputs and leaves its outputs.

Stages never build paths by hand; they ask a :class:`RunDir`. Every file is written atomically
(temporary file in the same folder, then ``os.replace``), so a killed run never leaves a
half-written artifact that a later stage would trust; a whole folder (a dataset) is written beside
its final place and swapped in (:func:`replacing_dir`). Files and folders get the modes the umask
allows (``mkstemp`` alone would make every artifact private to its owner). Stage completion is
recorded as a small JSON marker holding a fingerprint of the inputs and arguments: a second run
with the same fingerprint is skipped, a changed one redoes the stage.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux reports it in ``/proc/self/status``; elsewhere it can only be read by setting it, so the
    set-and-restore runs under a lock (other threads of this process that create files meanwhile
    would otherwise see a wrong mask).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder: 0o777 less the umask."""
    return 0o777 & ~current_umask()


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
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; the renamed file must be as shared as any other
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[^/]+$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but owned by someone else
        return True
    return True


def clean_leftover_dirs(final: str | os.PathLike[str]) -> list[Path]:
    """Remove what a killed :func:`replacing_dir` of ``final`` left beside it; returns what went.

    Only folders named by :func:`replacing_dir` whose process is gone are touched. A previous
    version moved aside (``.NAME.old-*``) while ``final`` is missing is put back, not deleted: the
    run died between the two renames of a swap, and the old dataset is the only complete one.
    """
    final = Path(final)
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    for entry in sorted(final.parent.iterdir()):
        match = _LEFTOVER.match(entry.name)
        if not match or match["name"] != final.name or not entry.is_dir() or entry.is_symlink():
            continue
        if _pid_alive(int(match["pid"])):
            continue
        if match["kind"] == "old" and not final.exists() and not final.is_symlink():
            os.rename(entry, final)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the OS, C library or filesystem cannot do it; the caller then falls back to
    two renames.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in_dir(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``, replacing what is there as one step where possible.

    With ``renameat2`` a reader sees the old folder or the new one, never neither; otherwise the
    old folder is renamed aside first, so for a moment ``final`` is missing (never mixed), and
    :func:`clean_leftover_dirs` puts it back if the process dies right then.
    """
    if not final.exists() and not final.is_symlink():
        os.rename(new, final)
        return
    if _exchange(new, final):
        shutil.rmtree(new)  # now holds the previous version
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
    os.rename(final, aside)  # onto the empty folder mkdtemp made: a name nobody else can take
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(aside, final)
        raise
    shutil.rmtree(aside)


@contextmanager
def replacing_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty sibling folder of ``final``; on success it replaces ``final`` as a whole.

    Why: a folder of many files (a dataset) rewritten in place is a mix of old and new files
    while it is written, and stays one if the writer dies. Writing beside it (same filesystem,
    so the swap is a rename) means a reader sees the old version or the new one. On error the new
    folder is removed and ``final`` is untouched; leftovers of killed runs are removed first.
    A symlinked ``final`` is resolved, so the folder it points to is replaced and the link stays.
    """
    final = Path(final)
    target = final.resolve() if final.is_symlink() else final
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftover_dirs(target)
    new = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(new, dir_mode())  # mkdtemp makes 0700
        yield new
        swap_in_dir(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
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
    from pathgen.storage import identity, is_url

    if is_url(path):  # an object in storage: its size and ETag
        return identity(str(path))
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
        """The whole tile table in one file (written for users; stages read :attr:`tiles_dir`)."""
        return self.root / "tiles.parquet"

    @property
    def tiles_dir(self) -> Path:
        """The tile table as a partitioned dataset: a parquet file per slide + ``_manifest.json``."""
        return self.root / "tiles"

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
