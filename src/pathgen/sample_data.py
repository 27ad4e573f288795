"""Where the bundled sample data lives (real slides, patches, captions), found the same way by all.

The sample data sits beside a checkout (``../shared/data``), never inside the package, so an
editable install, a clean CI clone and a user's own working directory each need a different guess;
``$PATHGEN_SHARED_DATA`` always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "PATHGEN_SHARED_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]  # src/pathgen/ -> the checkout, in an editable install


def candidates() -> list[Path]:
    """Places searched, in order."""
    if os.environ.get(ENV):
        return [Path(os.environ[ENV])]
    found = [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    found += [Path.cwd() / "shared" / "data", Path("/work/shared/data")]
    return list(dict.fromkeys(found))


def shared_data() -> Path | None:
    """The sample data folder, or None when none of :func:`candidates` exists."""
    return next((p for p in candidates() if p.is_dir()), None)


def shared_path(*parts: str) -> Path | None:
    """A file or folder inside the sample data, or None when it is absent."""
    for base in candidates():
        path = base.joinpath(*parts)
        if path.exists():
            return path
    return None
