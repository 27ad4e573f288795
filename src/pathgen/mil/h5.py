"""Per-slide feature files in the layout CLAM and TRIDENT use, so their tools (and ours) read them.

``<out>/h5_files/<slide_id>.h5`` holds ``features`` (N x D float32) and ``coords`` (N x 2 int64,
level-0 pixels of each tile's top-left corner). ``patch_size`` (level-0 px) and ``patch_level`` sit
in the attributes of ``coords`` (where CLAM reads them) and of the file; the file also records the
encoder, the slide's path (for heatmaps) and the tile-grid hash (for resume). A file is written to
a temporary name and renamed, so it is either complete or absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.rundir import atomic_path

H5_DIR = "h5_files"


def h5_path(out: Path, slide_id: str) -> Path:
    return Path(out) / H5_DIR / f"{slide_id}.h5"


@dataclass
class SlideFeatures:
    slide_id: str
    features: np.ndarray
    coords: np.ndarray
    attrs: dict[str, Any]


def write_slide(path: Path, features: np.ndarray, coords: np.ndarray, attrs: dict[str, Any]) -> Path:
    """Write one slide's file atomically; ``attrs`` go on the file and on ``coords``."""
    import h5py

    features = np.asarray(features, np.float32)
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    if len(features) != len(coords):
        raise ValueError(f"{len(features)} feature rows but {len(coords)} coordinates")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(
            "features", data=features if features.ndim == 2 else features.reshape(len(coords), -1)
        )
        dset = f.create_dataset("coords", data=coords)
        for key, value in attrs.items():
            if value is None:
                continue
            f.attrs[key] = value
            dset.attrs[key] = value
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(path: Path) -> dict[str, Any]:
    """The file's attributes and its shapes (``n``, ``dim``) without reading the arrays."""
    import h5py

    with h5py.File(path, "r") as f:
        attrs = {k: _plain(v) for k, v in f["coords"].attrs.items()} if "coords" in f else {}
        attrs.update({k: _plain(v) for k, v in f.attrs.items()})
        if "features" not in f or "coords" not in f:
            raise ValueError("not a feature file: it needs the datasets 'features' and 'coords'")
        shape = f["features"].shape
        attrs["n"] = int(shape[0])
        attrs["dim"] = int(shape[1]) if len(shape) == 2 else 0
    return attrs


def read_slide(path: Path) -> SlideFeatures:
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        features = np.asarray(f["features"][:], np.float32)
        coords = np.asarray(f["coords"][:], np.int64)
        attrs = {k: _plain(v) for k, v in f["coords"].attrs.items()}
        attrs.update({k: _plain(v) for k, v in f.attrs.items()})
    if features.ndim == 3 and features.shape[0] == 1:  # some CLAM variants store 1 x N x D
        features = features[0]
    return SlideFeatures(path.stem, features, coords.reshape(-1, 2), attrs)


def feature_files(folder: Path) -> dict[str, Path]:
    """slide_id -> file, from ``folder/h5_files/*.h5`` (or ``folder/*.h5`` when it has no h5_files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"feature folder not found: {folder}")
    sub = folder / H5_DIR
    files = sorted((sub if sub.is_dir() else folder).glob("*.h5"))
    return {p.stem: p for p in files if not p.name.startswith(".")}
