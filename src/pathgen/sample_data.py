"""Where sample data lives: the small sample shipped inside the package, and the larger shared folder.

Two kinds, found in two different ways:

- The **packaged sample** (``pathgen/sample/``: one CC0 slide, a few CC-BY-4.0 patches, a manifest,
  and ``NOTICE.md`` with one licence line per file) travels with every install, so ``pathgen demo``
  and the slide spec ``pathgen:sample`` work on any machine. It is found with
  :mod:`importlib.resources`, never by a path of some machine.
- The **shared data folder** (more slides, 32 patches, caption corpora; not redistributable as a
  whole) sits beside a checkout as ``../shared/data`` and serves the larger tests and benchmarks;
  ``$PATHGEN_SHARED_DATA`` always wins. The demo never looks there.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
from importlib import resources
from pathlib import Path

ENV = "PATHGEN_SHARED_DATA"
SAMPLE_SPEC = "pathgen:sample"  # a slide input naming the packaged sample's manifest
_REPO_ROOT = Path(__file__).resolve().parents[2]  # src/pathgen/ -> the checkout, in an editable install
# as_file may extract a zipped package's folder to a temporary one; it must live as long as the
# process (later stages read the slide again), so the context is closed only at exit.
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


@functools.cache
def sample_root() -> Path:
    """The packaged sample folder as a real folder on disk (the package's own in any normal install)."""
    root = _EXTRACTED.enter_context(resources.as_file(resources.files("pathgen") / "sample"))
    if not (root / "manifest.csv").is_file():
        raise FileNotFoundError(
            f"pathgen's packaged sample data is missing ({root}); reinstall pathgen-vl "
            "(its wheel ships pathgen/sample/)"
        )
    return Path(root)


def sample_path(*parts: str) -> Path:
    """A file or folder of the packaged sample, e.g. ``sample_path("slides", "CMU-1-Small-Region.svs")``."""
    return sample_root().joinpath(*parts)


def sample_manifest() -> Path:
    """The packaged sample's slide manifest (paths relative to it, with an illustrative report)."""
    return sample_path("manifest.csv")


def is_sample_spec(item: object) -> bool:
    """True for the slide input ``pathgen:sample``."""
    return isinstance(item, str) and item.strip() == SAMPLE_SPEC


def resolve_input(item: str) -> str:
    """A slide input as a path: ``pathgen:sample`` becomes the packaged manifest, others are unchanged."""
    return str(sample_manifest()) if is_sample_spec(item) else item


def candidates() -> list[Path]:
    """Places searched for the shared data folder, in order; all relative to this checkout or the cwd."""
    if os.environ.get(ENV):
        return [Path(os.environ[ENV])]
    found = [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    found.append(Path.cwd() / "shared" / "data")
    return list(dict.fromkeys(found))


def shared_data() -> Path | None:
    """The shared data folder, or None when none of :func:`candidates` exists."""
    return next((p for p in candidates() if p.is_dir()), None)


def shared_path(*parts: str) -> Path | None:
    """A file or folder inside the shared data, or None when it is absent."""
    for base in candidates():
        path = base.joinpath(*parts)
        if path.exists():
            return path
    return None
