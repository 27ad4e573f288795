"""Encoders: the tiny model, open_clip checkpoints, Hugging Face CLIP, and every bad spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pathgen.models import load_encoder
from pathgen.models.encoders import canonical_spec, parse_open_clip_spec


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny", device="cpu")


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)) for _ in range(n)]


def test_tiny_encodes_unit_vectors(tiny):
    assert tiny.image_size == 224 and tiny.dim == 64 and tiny.backend == "open_clip"
    img = tiny.encode_images(_images())
    txt = tiny.encode_texts(["tumor", "stroma with lymphocytes"])
    assert img.shape == (3, 64) and txt.shape == (2, 64)
    assert img.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1, atol=1e-5)
    # a preprocessed tensor batch gives the same result as PIL images
    batch = torch.stack([tiny.preprocess(im) for im in _images()])
    np.testing.assert_allclose(tiny.encode_images(batch), img, atol=1e-5)
    assert tiny.encode_texts([]).shape == (0, 64)


def test_tiny_is_the_same_model_every_time(tiny):
    other = load_encoder("tiny", device="cpu")
    for a, b in zip(tiny.model.state_dict().values(), other.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # and loading it did not disturb the caller's random stream
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_encoder("tiny", device="cpu")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_open_clip_checkpoint_round_trip(tmp_path, tiny, suffix):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    state["visual.proj"] = state["visual.proj"] * -1.0  # a model that differs from the random init
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".pt":
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    enc = load_encoder(f"open_clip:pathgen-tiny@{path}", device="cpu")
    got = enc.encode_images(_images(2))
    ref = tiny.encode_images(_images(2))
    np.testing.assert_allclose(got, -ref, atol=1e-5)  # flipped projection, same tower
    assert torch.equal(enc.model.state_dict()["visual.proj"], state["visual.proj"])


def test_quick_gelu_flag_and_spec_parsing():
    assert parse_open_clip_spec("open_clip:ViT-B-16") == ("ViT-B-16", None, False)
    assert parse_open_clip_spec("open_clip:ViT-B-16@/a/b.pt?quick_gelu=1") == ("ViT-B-16", "/a/b.pt", True)
    enc = load_encoder("open_clip:pathgen-tiny?quick_gelu=1", device="cpu")
    acts = {type(m).__name__ for m in enc.model.modules()}
    assert "QuickGELU" in acts
    with pytest.raises(ValueError, match="quick_gelu"):
        load_encoder("open_clip:pathgen-tiny?fast=1")


def test_canonical_spec_makes_paths_absolute(tmp_path, monkeypatch):
    (tmp_path / "w.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert canonical_spec("open_clip:ViT-B-16@w.pt") == f"open_clip:ViT-B-16@{tmp_path / 'w.pt'}"
    assert canonical_spec("tiny") == "tiny"
    assert canonical_spec("hf:openai/clip-vit-base-patch16") == "hf:openai/clip-vit-base-patch16"


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("", ValueError, "empty encoder spec"),
        ("resnet50", ValueError, "unknown encoder spec"),
        ("open_clip:", ValueError, "no model name"),
        ("open_clip:ViT-B-61", ValueError, "did you mean ViT-B-16"),
        ("open_clip:pathgen-tiny@/nonexistent/ckpt.pt", FileNotFoundError, "checkpoint not found"),
        ("hf:", ValueError, "no model after 'hf:'"),
        ("hf:/nonexistent/clip-dir", FileNotFoundError, "directory not found"),
        ("./no/such/dir", FileNotFoundError, "encoder directory not found"),
    ],
)
def test_bad_specs_fail_clearly(spec, error, message):
    with pytest.raises(error, match=message):
        load_encoder(spec, device="cpu")


def test_checkpoint_of_another_architecture(tmp_path):
    other = load_encoder("open_clip:pathgen-tiny", device="cpu")
    state = other.model.state_dict()
    state["visual.proj"] = torch.zeros(64, 32)  # wrong projection size
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not match the architecture 'pathgen-tiny'"):
        load_encoder(f"open_clip:pathgen-tiny@{path}", device="cpu")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"junk\.safetensors"):
        load_encoder(f"open_clip:pathgen-tiny@{tmp_path / 'junk.safetensors'}", device="cpu")


class _Pickled:
    pass


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": _Pickled()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_encoder(f"open_clip:pathgen-tiny@{path}", device="cpu")


def _tiny_hf_clip(root: Path) -> Path:
    """A tiny CLIPModel + processor saved to ``root``, tokenizer built offline from a byte vocab."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    root.mkdir(parents=True, exist_ok=True)
    try:  # transformers >= 5 builds the BPE from in-memory vocab and merges
        tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    except TypeError:  # transformers 4.x reads files
        (root / "vocab.json").write_text(json.dumps(vocab))
        (root / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=len(vocab) - 1,
                         bos_token_id=len(vocab) - 2, pad_token_id=len(vocab) - 1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                           num_hidden_layers=2, num_attention_heads=2),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(root)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(root)
    return root


def test_hf_clip_from_local_directory(tmp_path):
    root = _tiny_hf_clip(tmp_path / "clip")
    enc = load_encoder(f"hf:{root}", device="cpu")
    assert enc.backend == "hf" and enc.image_size == 32 and enc.dim == 16
    img = enc.encode_images(_images(2))
    txt = enc.encode_texts(["necrosis", "a much longer sentence about tumor cells"])
    assert img.shape == (2, 16) and txt.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    assert not np.allclose(txt[0], txt[1])
    # a bare directory is recognised too, and gives the same model
    bare = load_encoder(str(root), device="cpu")
    np.testing.assert_allclose(bare.encode_images(_images(2)), img, atol=1e-5)
    # its preprocess survives pickling (DataLoader workers get a copy)
    import pickle

    assert pickle.loads(pickle.dumps(enc.preprocess))(_images(1)[0]).shape == (3, 32, 32)


def test_hf_uncached_hub_id_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never touch the network in tests
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="could not load Hugging Face CLIP 'no-such-org/no-such-clip'"):
        load_encoder("hf:no-such-org/no-such-clip", device="cpu")


def test_directory_without_a_model_config(tmp_path):
    with pytest.raises(ValueError, match=r"neither config\.json"):
        load_encoder(str(tmp_path), device="cpu")


def _activations(model: torch.nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules() if type(m).__name__ in ("GELU", "QuickGELU")}


def test_pretrained_tags_trained_with_quick_gelu_get_it(tmp_path, monkeypatch):
    import open_clip
    from open_clip import pretrained as registry

    from pathgen.models.encoders import tag_needs_quick_gelu

    # open_clip's own per-tag records: OpenAI weights use QuickGELU, LAION's ViT-B-16 does not
    assert tag_needs_quick_gelu("ViT-B-16", "openai") and tag_needs_quick_gelu("ViT-L-14-336", "openai")
    assert not tag_needs_quick_gelu("ViT-B-16", "laion2b_s34b_b88k")
    assert not tag_needs_quick_gelu("ViT-B-16", None)
    # a tag with QuickGELU weights (a local file, as open_clip's registry allows) loads with QuickGELU
    # through the real path eval and embed use; open_clip alone would build GELU and only warn
    from pathgen.models.encoders import register_model_configs

    register_model_configs()
    donor = open_clip.create_model("pathgen-tiny", force_quick_gelu=True)
    torch.save(donor.state_dict(), tmp_path / "w.pt")
    monkeypatch.setitem(
        registry._PRETRAINED, "pathgen-tiny", {"qg": {"file": str(tmp_path / "w.pt"), "quick_gelu": True}}
    )
    enc = load_encoder("open_clip:pathgen-tiny@qg", device="cpu")
    assert _activations(enc.model) == {"QuickGELU"}
    assert _activations(load_encoder("tiny", device="cpu").model) == {"GELU"}
