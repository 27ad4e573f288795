"""The mixing manifest: which shard sets a CLIP training run draws from, and how often.

Schema (YAML or JSON; paths relative to the manifest's folder)::

    version: 1
    sets:
      - name: pathgen                        # unique; also the `source` tag of its samples
        shards: export/shards/{00000..00003}.tar   # brace pattern, or a list of tar paths
        weight: 1.0                          # upsampling factor, > 0 (see below)
        n_samples: 3812                      # samples in the set (from shards/sizes.json)

``weight`` has open_clip_train's meaning of ``--train-data-upsampling-factors``: with every weight
1.0 the sets are sampled in proportion to their size; 2.0 draws a set twice as often as its size
alone would. :func:`open_clip_args` turns a manifest into open_clip_train's arguments
(``--train-data a::b --train-data-upsampling-factors 1::2 --dataset-resampled --train-num-samples``).
PathGen-CLIP's second stage (generated pairs, then ~700K existing pairs) is two manifests.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pathgen.export.shards import brace_pattern
from pathgen.rundir import atomic_write

MANIFEST_NAME = "mix.yaml"
MANIFEST_VERSION = 1


@dataclass
class MixSet:
    name: str
    shards: list[str]  # absolute tar paths, expanded
    weight: float
    n_samples: int
    pattern: str  # as written in the manifest, resolved against its folder


def dataset_entry(folder: Path, name: str | None = None, weight: float = 1.0) -> dict[str, Any]:
    """A manifest entry for a dataset folder (``RUN/export`` or an ingest output)."""
    sizes_path = Path(folder) / "shards" / "sizes.json"
    if not sizes_path.exists():
        raise FileNotFoundError(f"{sizes_path} not found: {folder} is not a pathgen dataset folder")
    sizes = json.loads(sizes_path.read_text(encoding="utf-8"))
    shards = sorted(sizes)
    return {
        "name": name or Path(folder).name,
        "shards": brace_pattern(Path(folder) / "shards", shards),
        "weight": float(weight),
        "n_samples": int(sum(sizes.values())),
    }


def _relative(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    shards = str(entry["shards"])
    if not Path(shards).is_absolute():
        return entry
    with contextlib.suppress(ValueError):  # outside the manifest's folder: stays absolute
        shards = str(Path(shards).resolve().relative_to(base.resolve()))
    return {**entry, "shards": shards}


def write_manifest(path: Path, entries: list[dict[str, Any]]) -> Path:
    base = Path(path).parent
    doc = {"version": MANIFEST_VERSION, "sets": [_relative(e, base) for e in entries]}
    atomic_write(path, yaml.safe_dump(doc, sort_keys=False))
    return Path(path)


def load_manifest(path: str | Path) -> list[MixSet]:
    """Read and validate a manifest; relative shard paths resolve against its folder."""
    from braceexpand import braceexpand

    path = Path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("sets"), list):
        raise ValueError(f"{path}: a mixing manifest is a mapping with a `sets` list")
    out: list[MixSet] = []
    names: set[str] = set()
    for i, entry in enumerate(doc["sets"]):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("shards"):
            raise ValueError(f"{path}: sets[{i}] needs `name` and `shards`")
        name = str(entry["name"])
        if name in names:
            raise ValueError(f"{path}: duplicate set name {name!r}")
        names.add(name)
        weight = float(entry.get("weight", 1.0))
        if weight <= 0:
            raise ValueError(f"{path}: sets[{i}] ({name}) weight must be > 0, got {weight}")
        raw = entry["shards"] if isinstance(entry["shards"], list) else [entry["shards"]]
        resolved = [str(p if Path(p).is_absolute() else path.parent / p) for p in map(str, raw)]
        expanded = [s for pattern in resolved for s in braceexpand(pattern)]
        out.append(MixSet(name, expanded, weight, int(entry.get("n_samples", 0)), "::".join(resolved)))
    return out


def open_clip_args(path: str | Path) -> dict[str, Any]:
    """open_clip_train arguments for a manifest: train_data, upsampling factors, num samples."""
    sets = load_manifest(path)
    return {
        "train_data": "::".join(s.pattern for s in sets),
        "train_data_upsampling_factors": "::".join(f"{s.weight:g}" for s in sets),
        "train_num_samples": sum(s.n_samples for s in sets),
        "dataset_resampled": len(sets) > 1 or any(s.weight != 1.0 for s in sets),
    }


def dataset_name(folder: Path) -> str:
    """A set's name from its folder: ``runs/a/export`` is ``a``, ``pairs/quilt`` is ``quilt``."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "export" else folder.name


def refresh_manifest(
    root: Path, weights: dict[str, float] | None = None, external: list[Path] | tuple[Path, ...] = ()
) -> Path:
    """Rewrite ``root/mix.yaml`` to list every dataset folder under ``root`` plus ``external`` ones.

    Weights already in the manifest are kept (a user may have edited them); ``weights`` overrides.
    """
    path = Path(root) / MANIFEST_NAME
    old: dict[str, dict[str, Any]] = {}
    if path.exists():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            old = {str(e["name"]): e for e in doc.get("sets", []) if isinstance(e, dict) and "name" in e}
        except (yaml.YAMLError, AttributeError):
            old = {}
    entries = []
    for sizes in sorted(Path(root).glob("*/shards/sizes.json")):
        folder = sizes.parent.parent
        weight = (weights or {}).get(folder.name, old.get(folder.name, {}).get("weight", 1.0))
        entries.append(dataset_entry(folder, folder.name, weight))
    for folder in external:
        if (Path(folder) / "shards" / "sizes.json").exists():
            ext_name = dataset_name(folder)
            if ext_name not in {e["name"] for e in entries}:
                weight = (weights or {}).get(ext_name, old.get(ext_name, {}).get("weight", 1.0))
                entries.append(dataset_entry(Path(folder).resolve(), ext_name, weight))
    known = {e["name"] for e in entries}
    entries += [e for n, e in old.items() if n not in known]  # sets living elsewhere (e.g. RUN/export)
    return write_manifest(path, entries)
