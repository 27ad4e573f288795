"""A saved HF model folder honours the umask (save_pretrained alone writes weights 0600)."""

from __future__ import annotations

import os
import stat

import pytest
from transformers import AutoModelForImageTextToText

from pathgen.models.hf_folder import save_hf_folder
from pathgen.models.tiny_vlm import build_tiny_vlm


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_model_folder_files_get_the_umask_modes(tmp_path, mask, mode):
    model, processor = build_tiny_vlm()
    out = tmp_path / "model"
    old = os.umask(mask)
    try:
        save_hf_folder(model, processor, out)
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".safetensors") for p in files)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: mode for p in files}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left beside it
    assert AutoModelForImageTextToText.from_pretrained(out).config.model_type == "llava"
