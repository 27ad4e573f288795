"""The assistant: open_clip ViT -> CLIPVisionModel conversion is exact; `pathgen assistant train` on
CPU writes a folder transformers loads and `pathgen eval --task mcq` evaluates; MCQ answer parsing."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.evaluate.mcq import load_mcq, parse_answer

sys.path.insert(0, str(Path(__file__).parent))
from assistant_data import clip_folder, crc_sets


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_folder(tmp_path_factory.mktemp("clip"))


def test_vision_tower_conversion_is_exact(clip: Path) -> None:
    import open_clip
    import torch

    from pathgen.instruct.model import load_vision_tower
    from pathgen.models.encoders import quiet_no_weights_warning

    hf, _ = load_vision_tower(clip, with_projection=True)
    with quiet_no_weights_warning():
        ref, _, _ = open_clip.create_model_and_transforms(f"local-dir:{clip}", pretrained=None)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = ref.eval().encode_image(x)
        b = hf.eval()(pixel_values=x).image_embeds
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_non_vit_tower_is_refused() -> None:
    from pathgen.instruct.model import clip_vision_config

    with pytest.raises(ValueError, match="only open_clip ViT"):
        clip_vision_config({"vision_cfg": {"timm_model_name": "resnet10t"}})


def test_assistant_train_then_eval_mcq(clip: Path, tmp_path: Path, crc_patches: Path) -> None:
    import torch

    torch.set_num_threads(2)
    crc_sets(crc_patches, tmp_path / "train", tmp_path / "held", copies=1)
    runner = CliRunner()
    for folder, frac in (("train", "0.0"), ("held", "0.99")):
        res = runner.invoke(
            app, ["instruct", str(tmp_path / folder), "--classes", "--names", "crc100k",
                  "--out", str(tmp_path / f"d{folder}"), "--test-fraction", frac],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["assistant", "train", "--clip", str(clip), "--llm", "tiny", "--data", str(tmp_path / "dtrain"),
              "--out", str(tmp_path / "asst"), "--stage1-epochs", "0.5", "--stage2-epochs", "0.5",
              "--lora", "--batch-size", "8", "--max-length", "160"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    from transformers import AutoModelForImageTextToText

    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "asst")
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"
    assert not any("lora" in k for k in loaded.state_dict()), "LoRA adapters are merged on save"
    training = json.loads((tmp_path / "asst" / "training.json").read_text())
    assert training["losses"]["stage1"] and training["losses"]["stage2"]
    out = tmp_path / "eval"
    res = runner.invoke(
        app, ["eval", "--task", "mcq", "--model", str(tmp_path / "asst"), "--benchmark",
              str(tmp_path / "dheld" / "mcq.json"), "--out", str(out), "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    n_test = len(load_mcq(tmp_path / "dheld" / "mcq.json")[0])
    assert result["tasks"]["mcq"]["n"] == n_test > 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == n_test
    assert "| mcq |" in (out / "results.md").read_text()
    res = runner.invoke(app, ["eval", "compare", str(out), str(out)])
    assert res.exit_code == 0 and "mcq" in res.output


@pytest.mark.parametrize(
    ("response", "letter"),
    [("B", "B"), ("(C)", "C"), ("The answer is D.", "D"), ("smooth muscle", "B"), ("B) smooth muscle", "B"),
     ("I think it is adipose tissue, not muscle.", "A"), ("Answer: C", "C")],
)  # fmt: skip
def test_parse_answer(response: str, letter: str) -> None:
    options = {"A": "adipose tissue", "B": "smooth muscle", "C": "mucus", "D": "debris"}
    assert parse_answer(response, options, random.Random(0)) == (letter, False)


def test_parse_answer_falls_back_seeded() -> None:
    options = {"A": "x1", "B": "x2", "C": "x3", "D": "x4"}
    picks = [parse_answer("no idea", options, random.Random(7))[0] for _ in range(3)]
    assert len(set(picks)) == 1 and parse_answer("no idea", options, random.Random(7))[1] is True
