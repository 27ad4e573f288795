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
alone would. `pathgen train` turns a manifest into open_clip_train's arguments
(:func:`pathgen.train.argv.resolve_mixture`: every shard listed, each with its set's weight).
PathGen-CLIP's second stage (generated pairs, then ~700K existing pairs) is two manifests.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pathgen.export.shards import brace_pattern
from pathgen.rundir import atomic_write

MANIFEST_NAME = "mix.yaml"
MANIFEST_VERSION = 1


@dataclass
class MixSet:
    """One validated set of a manifest; ``patterns`` are resolved against the manifest's folder."""

    name: str
    shards: list[str]  # absolute tar paths, expanded (a folder pattern expands to its *.tar)
    weight: float
    n_samples: int | None  # None: unknown, count from sizes.json / the tars when training
    pattern: str  # as written in the manifest, resolved against its folder, "::"-joined
    patterns: list[str] = field(default_factory=list)


SET_KEYS = frozenset({"name", "shards", "weight", "n_samples"})


def dataset_entry(folder: Path, name: str | None = None, weight: float = 1.0) -> dict[str, Any]:
    """A manifest entry for a dataset folder (``RUN/export`` or an ingest output).

    The shard pattern is absolute (the folder is resolved first) so that :func:`write_manifest` can
    make it relative to the manifest's folder whatever the current directory is.
    """
    folder = Path(folder).resolve()
    sizes_path = folder / "shards" / "sizes.json"
    if not sizes_path.exists():
        raise FileNotFoundError(f"{sizes_path} not found: {folder} is not a pathgen dataset folder")
    sizes = json.loads(sizes_path.read_text(encoding="utf-8"))
    shards = sorted(sizes)
    return {
        "name": name or folder.name,
        "shards": brace_pattern(folder / "shards", shards),
        "weight": float(weight),
        "n_samples": int(sum(sizes.values())),
    }


def _relative(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    """Shard paths inside the manifest's folder become relative to it, so the folder can move."""
    raw = entry["shards"]
    items = raw if isinstance(raw, list) else [raw]
    fixed = []
    for shards in map(str, items):
        if Path(shards).is_absolute():
            with contextlib.suppress(ValueError):  # outside the manifest's folder: stays absolute
                shards = Path(shards).resolve().relative_to(base.resolve()).as_posix()
        fixed.append(shards)
    return {**entry, "shards": fixed if isinstance(raw, list) else fixed[0]}


def write_manifest(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Write ``entries`` (shards absolute or already relative to ``path``'s folder) as a manifest."""
    base = Path(path).parent
    doc = {"version": MANIFEST_VERSION, "sets": [_relative(e, base) for e in entries]}
    atomic_write(path, yaml.safe_dump(doc, sort_keys=False))
    return Path(path)


def _raw_sets(path: Path) -> list[Any]:
    """The list of set entries of any accepted form: ``{version, sets}`` (what pathgen writes), or the
    older ``{sources: [...]}`` and plain-list forms that hand-written manifests may still use."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if isinstance(doc, dict):
        version = doc.get("version", MANIFEST_VERSION)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise ValueError(f"{path}: manifest version {version!r} is newer than this pathgen reads")
        doc = doc.get("sets", doc.get("sources"))
    if not isinstance(doc, list) or not doc:
        raise ValueError(
            f"{path}: a mixing manifest is `version: 1` with a non-empty `sets` list of "
            "{name, shards, weight, n_samples} (as `pathgen ingest` writes it)"
        )
    return doc


def _expand(pattern: str) -> list[str]:
    from braceexpand import braceexpand

    if Path(pattern).is_dir():
        return sorted(str(p) for p in Path(pattern).glob("*.tar"))
    return list(braceexpand(pattern))


def _parse_set(path: Path, i: int, entry: Any) -> MixSet:
    """Validate one entry; unknown keys are refused so that a typo (``wieght``) is not ignored."""
    if not isinstance(entry, dict) or not entry.get("name") or not entry.get("shards"):
        raise ValueError(f"{path}: sets[{i}] needs `name` and a non-empty `shards`")
    name = str(entry["name"])
    unknown = sorted(set(entry) - SET_KEYS)
    if unknown:
        raise ValueError(f"{path}: sets[{i}] ({name}) has unknown key(s) {', '.join(unknown)}")
    weight = float(entry.get("weight", 1.0))
    if weight <= 0:
        raise ValueError(f"{path}: sets[{i}] ({name}) weight must be > 0, got {weight}")
    n_samples = entry.get("n_samples")
    if n_samples is not None and int(n_samples) < 0:
        raise ValueError(f"{path}: sets[{i}] ({name}) n_samples must be >= 0, got {n_samples}")
    raw = entry["shards"] if isinstance(entry["shards"], list) else [entry["shards"]]
    resolved = [str(Path(p).expanduser()) for p in map(str, raw)]
    resolved = [p if Path(p).is_absolute() else str(path.parent / p) for p in resolved]
    expanded = [s for pattern in resolved for s in _expand(pattern)]
    count = int(n_samples) if n_samples else None  # 0 or absent: unknown, counted when training
    return MixSet(name, expanded, weight, count, "::".join(resolved), resolved)


def load_manifest(path: str | Path) -> list[MixSet]:
    """Read and validate a manifest; relative shard paths resolve against its folder.

    The one reader of mixing manifests: ``pathgen ingest`` writes them and ``pathgen train`` reads
    them through here, so the two can never disagree about the format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mixing manifest not found: {path}")
    sets = [_parse_set(path, i, entry) for i, entry in enumerate(_raw_sets(path))]
    names = [s.name for s in sets]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ValueError(f"{path}: duplicate set name {dup!r}")
    return sets


def dataset_name(folder: Path) -> str:
    """A set's name from its folder: ``runs/a/export`` is ``a``, ``pairs/quilt`` is ``quilt``."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "export" else folder.name


def _old_sets(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of an existing manifest by name (empty when absent or unreadable: it is rebuilt)."""
    if not path.exists():
        return {}
    try:
        return {str(e["name"]): e for e in _raw_sets(path) if isinstance(e, dict) and "name" in e}
    except ValueError:
        return {}


def _n_samples(folder: Path) -> int:
    sizes = json.loads((folder / "shards" / "sizes.json").read_text(encoding="utf-8"))
    return int(sum(sizes.values()))


def refresh_manifest(
    root: Path, weights: dict[str, float] | None = None, external: list[Path] | tuple[Path, ...] = ()
) -> Path | None:
    """Rewrite ``root/mix.yaml`` to list every dataset folder under ``root`` plus ``external`` ones.

    Weights already in the manifest are kept (a user may have edited them); ``weights`` overrides.
    A folder holding no sample (a failed ingest) gets no entry: training on it would fail later;
    with no entry left the manifest is removed and None returned.
    Entries of sets living elsewhere that the user added by hand are kept.
    """
    path = Path(root) / MANIFEST_NAME
    old = _old_sets(path)

    def weight_of(name: str) -> float:
        return float((weights or {}).get(name, old.get(name, {}).get("weight", 1.0)))

    local = [
        sizes.parent.parent
        for sizes in sorted(Path(root).glob("*/shards/sizes.json"))
        if not sizes.parent.parent.name.startswith(".")  # a set being written (or a killed one)
    ]
    entries = [dataset_entry(f, f.name, weight_of(f.name)) for f in local if _n_samples(f) > 0]
    for folder in external:
        ext_name = dataset_name(folder)
        has_data = (Path(folder) / "shards" / "sizes.json").exists() and _n_samples(Path(folder)) > 0
        if has_data and ext_name not in {e["name"] for e in entries}:
            entries.append(dataset_entry(Path(folder), ext_name, weight_of(ext_name)))
    known = {e["name"] for e in entries} | {f.name for f in local}
    entries += [e for n, e in old.items() if n not in known]
    if not entries:  # nothing trainable: no manifest at all beats one that fails in training
        path.unlink(missing_ok=True)
        return None
    return write_manifest(path, entries)
