"""Synthetic feature files for the MIL tests: a planted signal the models must find.

Positive slides carry three "tumour" tiles whose first four feature dimensions are shifted; every
other tile is noise. The signal is strong, so a few epochs separate the classes: the tests check
behaviour (protocol, bad input, files written), the slow proof test checks learning on real pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DIM = 16


def make_slides(folder: Path, n: int, seed: int = 0, dim: int = DIM) -> dict[str, str]:
    """``n`` slides s000.. alternating normal/tumor under ``folder/h5_files``; slide_id -> label."""
    from pathgen.mil.h5 import h5_path, write_slide

    rng = np.random.default_rng(seed)
    labels = {}
    for i in range(n):
        sid, tumour = f"s{i:03d}", i % 2 == 1
        k = int(rng.integers(12, 30))
        feats = rng.normal(size=(k, dim)).astype(np.float32)
        if tumour:
            feats[:3, :4] += 4.0
        coords = np.stack([np.arange(k) % 6 * 256, np.arange(k) // 6 * 256], 1)
        write_slide(
            h5_path(folder, sid), feats, coords, {"encoder": "synthetic", "patch_size": 256, "patch_level": 0}
        )
        labels[sid] = "tumor" if tumour else "normal"
    return labels


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on one slide at a time: more threads only add contention on shared CPUs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    feats = tmp_path / "feats"
    return feats, make_slides(feats, 24)
