"""The per-process slide-handle cache of ``read_tile`` under threads (the caption stage reads so)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pathgen.slides import open_slide, patches, read_tile_array


def test_threads_reading_through_a_tiny_cache_get_correct_pixels(
    cmu_small: Path, tcga_jp2k: Path, built_slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one cached handle and six threads over five slide paths, every read evicts a handle that
    other threads may be reading; the old LRU closed it under them (errors or wrong pixels)."""
    paths = [cmu_small, tcga_jp2k, built_slide]
    for i, src in enumerate((cmu_small, built_slide)):  # more distinct paths -> more evictions
        link = tmp_path / f"copy-{i}{src.suffix}"
        link.symlink_to(src)
        paths.append(link)
    rng = np.random.default_rng(0)
    jobs: list[tuple[Path, int, int]] = []
    for path in paths:
        with open_slide(path) as slide:
            w, h = slide.dimensions
        for _ in range(6):
            jobs.append((path, int(rng.integers(0, w - 512)), int(rng.integers(0, h - 512))))
    expected = {}
    for path, x, y in jobs:  # single-threaded, each slide opened on its own: the reference
        with open_slide(path) as slide:
            expected[(path, x, y)] = read_tile_array(slide, x, y, 512, 128)

    monkeypatch.setattr(patches, "_CACHE_SIZE", 1)
    patches._cache.clear()
    errors: list[str] = []
    wrong: list[tuple[Path, int, int]] = []
    start = threading.Barrier(6)

    def worker(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(jobs))
        start.wait()
        for _ in range(2):
            for j in order:
                path, x, y = jobs[j]
                try:
                    got = read_tile_array(str(path), x, y, 512, 128)
                except Exception as exc:  # what the old cache produced under eviction
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if not np.array_equal(got, expected[(path, x, y)]):
                    wrong.append((path, x, y))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    patches._cache.clear()
    assert not errors, errors[:5]
    assert not wrong, wrong[:5]
    assert len(patches._cache._open) == 0


def test_evicted_handle_is_closed_by_its_last_reader(
    cmu_small: Path, tcga_jp2k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patches, "_CACHE_SIZE", 1)
    patches._cache.clear()
    with patches._borrow(str(cmu_small)) as held:
        assert held._backend is not None
        read_tile_array(str(tcga_jp2k), 0, 0, 256)  # evicts the held slide from the cache ...
        assert (str(cmu_small), "auto") not in patches._cache._open
        assert held._backend is not None  # ... but does not close it under its reader
        assert held.read_region((0, 0), 0, (64, 64)).shape == (64, 64, 3)
    assert held._backend is None  # the last reader closed it
    patches._cache.clear()
