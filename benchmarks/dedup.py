"""The run-wide near-duplicate pass: numpy inverted-file search vs faiss, on the same selected set.

Random unit embeddings in clusters (as real tiles are) with planted near-duplicates (cosine ~0.99)
stand in for a run's selected tiles. Both searches run ``near_duplicate_filter`` with the same
priority order; the table gives seconds, the ratio (numpy / faiss) and how many tiles each keeps
(the planted duplicates must all go either way).

    python benchmarks/dedup.py                          # 50k and 200k tiles, 768-d
    python benchmarks/dedup.py --sizes 1000000 --dim 768
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float16 unit rows, the last 5 % near-copies of earlier rows; returns (x, copies' rows)."""
    rng = np.random.default_rng(seed)
    n_dup = n // 20
    centers = rng.standard_normal((256, dim)).astype(np.float32)
    base = centers[rng.integers(256, size=n - n_dup)] + 2.0 * rng.standard_normal(
        (n - n_dup, dim), np.float32
    )
    src = rng.choice(n - n_dup, n_dup, replace=False)
    dups = base[src] + 0.05 * rng.standard_normal((n_dup, dim), np.float32)
    x = np.concatenate([base, dups])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), np.arange(n - n_dup, n)


def run(n: int, dim: int) -> dict:
    from pathgen.selection.dedup import near_duplicate_filter

    x, copies = planted(n, dim)
    order = np.arange(n)  # originals first: every copy must go
    row: dict = {"tiles": n, "dim": dim}
    for name, kw in (("numpy", {"faiss_above": None}), ("faiss", {"faiss_above": 1})):
        start = time.perf_counter()
        keep, _ = near_duplicate_filter(x, order, 0.88, seed=0, **kw)
        row[f"{name}_s"] = round(time.perf_counter() - start, 2)
        row[f"{name}_kept"] = int(keep.sum())
        row[f"{name}_copies_left"] = int(keep[copies].sum())
    row["ratio_numpy_over_faiss"] = round(row["numpy_s"] / max(row["faiss_s"], 1e-9), 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--out", type=Path, default=Path("bench-out/dedup.json"))
    args = parser.parse_args(argv)
    rows = [run(n, args.dim) for n in args.sizes]
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(), "load_1min": load}, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
