"""Throughputs measured elsewhere, read from benchmark JSON files (`--bench-json`).

Which files are understood, and what each gives the plan (a measured number replaces the
calibration or the assumption it covers, and the plan names the file it came from):

- ``benchmarks/tiling.py`` (``bench-out/tiling.json``): seconds per level-0 gigapixel of the
  largest slide's tissue grid -> tile cost per slide;
- ``benchmarks/selection.py`` (``bench-out/selection.json``): selection seconds per tile at the
  largest size run -> select cost;
- ``benchmarks/captioning.py`` (``bench-out/captioning.json``): client CPU ms per call -> caption
  client CPU;
- ``benchmarks/export_throughput.py`` (``bench-out/export_throughput.json``): one thread's
  patches/s -> export cost;
- a ``pathgen plan --json`` file written on a GPU machine: its encoder GPU seconds per tile;
- a hand-written ``{"embed_gpu_tiles_per_s": ..., "vlm_tokens_per_s": ...}`` (either key) with
  throughputs measured on your own hardware.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KNOWN = (
    "tiling.json (grid), selection.json (selection), captioning.json (results), "
    "export_throughput.json, a `pathgen plan --json` file, or {embed_gpu_tiles_per_s, vlm_tokens_per_s}"
)


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def read_bench(path: Path) -> dict[str, float]:
    """What ``path`` measured, as plan keys (``tile_s_per_gpx``, ``select_s_per_tile``,
    ``client_cpu_s_per_call``, ``export_s_per_item``, ``embed_gpu_s_per_tile``, ``vlm_tokens_per_s``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"benchmark JSON not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, one of {KNOWN}")
    found: dict[str, float] = {}
    # Entries of the wrong shape are passed over, like missing ones (a hand-edited file must not crash).
    grid = [g for g in _dicts(data.get("grid")) if g.get("pathgen_s") and _numbers(g.get("dimensions"), 2)]
    if grid:
        big = max(grid, key=lambda g: g["dimensions"][0] * g["dimensions"][1])
        gpx = big["dimensions"][0] * big["dimensions"][1] / 1e9
        if (v := _positive(big["pathgen_s"])) and gpx > 0:
            found["tile_s_per_gpx"] = v / gpx
    sizes = [s for s in _dicts(data.get("selection")) if _numbers([s.get("tiles")], 1) and s["tiles"] > 0]
    if sizes:
        big = max(sizes, key=lambda s: s["tiles"])
        if v := _positive(big.get("seconds")):
            found["select_s_per_tile"] = v / big["tiles"]
    results = data.get("results")
    first = results[0] if isinstance(results, list) and results else None
    if isinstance(first, dict) and (v := _positive(first.get("client_cpu_ms_per_call"))):
        found["client_cpu_s_per_call"] = v / 1000
    if data.get("benchmark") == "export_throughput":
        one = [r for r in _dicts(data.get("rows")) if r.get("workers") == 1]
        if one and (v := _positive(one[0].get("patches_per_s"))):
            found["export_s_per_item"] = 1 / v
    if data.get("kind") == "pathgen-plan":
        enc = (data.get("calibration") or {}).get("encoder") or {}
        if v := _positive(enc.get("gpu_s_per_tile_measured")):
            found["embed_gpu_s_per_tile"] = v
    if v := _positive(data.get("embed_gpu_tiles_per_s")):
        found["embed_gpu_s_per_tile"] = 1 / v
    if v := _positive(data.get("vlm_tokens_per_s")):
        found["vlm_tokens_per_s"] = v
    if not found:
        raise ValueError(f"{path}: no throughput the plan can use; expected one of {KNOWN}")
    return found


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _numbers(value: Any, n: int) -> bool:
    """``value`` is a list of ``n`` numbers."""
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def read_benches(paths: list[Path]) -> tuple[dict[str, float], dict[str, str]]:
    """All files merged (a later file wins) and, per key, the file it came from."""
    values: dict[str, float] = {}
    source: dict[str, str] = {}
    for path in paths:
        for key, value in read_bench(path).items():
            values[key], source[key] = value, Path(path).name
    return values, source
