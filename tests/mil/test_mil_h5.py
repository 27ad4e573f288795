"""Feature files: the CLAM/TRIDENT layout, attributes where CLAM reads them, atomic writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pathgen.mil.h5 import feature_files, h5_path, read_attrs, read_slide, write_slide


def test_roundtrip_layout_and_attrs(tmp_path):
    feats = np.arange(12, dtype=np.float64).reshape(3, 4)
    coords = np.array([[0, 0], [512, 0], [0, 512]])
    path = write_slide(
        h5_path(tmp_path, "a"),
        feats,
        coords,
        {"patch_size": 512, "patch_level": 0, "encoder": "tiny", "mpp": None},
    )
    assert path == tmp_path / "h5_files" / "a.h5"
    with h5py.File(path) as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (3, 4)
        assert f["coords"].dtype == np.int64 and f["coords"].shape == (3, 2)
        assert f["coords"].attrs["patch_size"] == 512 and f["coords"].attrs["patch_level"] == 0
        assert "mpp" not in f.attrs  # None is left out, not written as a string
    back = read_slide(path)
    assert back.slide_id == "a" and np.array_equal(back.features, feats.astype(np.float32))
    assert back.coords.tolist() == coords.tolist() and back.attrs["encoder"] == "tiny"
    attrs = read_attrs(path)
    assert (attrs["n"], attrs["dim"]) == (3, 4)
    assert [p.name for p in (tmp_path / "h5_files").iterdir()] == ["a.h5"]  # no temporary left


def test_mismatched_rows_fail_and_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="2 feature rows but 3"):
        write_slide(h5_path(tmp_path, "b"), np.zeros((2, 4)), np.zeros((3, 2)), {})
    assert not list(tmp_path.rglob("*.h5*"))


def test_feature_files_reads_both_layouts(tmp_path):
    write_slide(tmp_path / "flat" / "x.h5", np.zeros((1, 2)), np.zeros((1, 2)), {})
    write_slide(h5_path(tmp_path / "clam", "y"), np.zeros((1, 2)), np.zeros((1, 2)), {})
    assert list(feature_files(tmp_path / "flat")) == ["x"]
    assert list(feature_files(tmp_path / "clam")) == ["y"]
    with pytest.raises(FileNotFoundError):
        feature_files(tmp_path / "missing")
