"""Exact and near-duplicate images across datasets: pixel SHA-256 and a 64-bit difference hash.

Why hash decoded pixels: the same image re-saved (PNG vs JPEG container, metadata stripped) is
still the same training sample, and the same file name can hold different images. Why dHash:
published pathology pair sets overlap (Quilt-1M, PathCap and OpenPath share figures); resized or
re-compressed copies differ in bytes but not in their gradient sign pattern. Near pairs are found
with the pigeonhole trick (split the 64 bits into ``t + 1`` bands: two hashes within Hamming
distance ``t`` agree exactly on at least one band), so the search is near-linear, not all-pairs.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

MASK64 = (1 << 64) - 1


def pixel_sha256(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def dhash(image: Image.Image) -> int:
    """64-bit difference hash (horizontal gradient signs of a 9x8 grey thumbnail), as a signed int64.

    Signed so it fits a parquet int64 column; compare with :func:`hamming`.
    """
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & MASK64).bit_count()


def _bands(bits: int, threshold: int) -> list[tuple[int, int]]:
    n = threshold + 1
    edges = [round(i * bits / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def near_pairs(hashes: Sequence[int], threshold: int = 4) -> list[tuple[int, int, int]]:
    """Index pairs ``(i, j, distance)`` with ``i < j`` and Hamming distance in ``1..threshold``.

    Distance 0 is left out: identical hashes are reported separately (as near-identical copies)
    by :func:`same_hash_groups`, which is cheaper and avoids quadratic output for repeats.
    """
    if threshold < 1:
        return []
    found: set[tuple[int, int]] = set()
    values = [h & MASK64 for h in hashes]
    for lo, hi in _bands(64, threshold):
        mask = ((1 << (hi - lo)) - 1) << lo
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, v in enumerate(values):
            buckets[v & mask].append(i)
        for members in buckets.values():
            if len(members) < 2 or len(members) > 5000:  # a huge bucket is a degenerate image class
                continue
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = members[a], members[b]
                    if (i, j) not in found and 0 < hamming(values[i], values[j]) <= threshold:
                        found.add((i, j))
    return sorted((i, j, hamming(values[i], values[j])) for i, j in found)


def same_hash_groups(hashes: Sequence[int]) -> list[list[int]]:
    """Groups of indices sharing one dHash exactly (near-identical, possibly different pixels)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        groups[h].append(i)
    return [g for g in groups.values() if len(g) > 1]
