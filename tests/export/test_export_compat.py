"""The shards load in the tools people train with: open_clip_train's webdataset loader and HF datasets."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import pytest
from export_testkit import crc_pairs
from PIL import Image

from pathgen.export.dataset import write_dataset


@pytest.fixture(scope="module")
def dataset(crc_patches, tmp_path_factory):
    out = tmp_path_factory.mktemp("compat")
    pairs = crc_pairs(crc_patches, n=10)
    for p in pairs[:6]:  # HF infers the schema from the first samples: make them the sparse ones
        p.meta.update(edits=[], file_id=None, project=None, revised=None, mpp=0.0, mpp_source="none")
    pairs[7].meta["flags"] = ["truncated"]
    summary = write_dataset(out, iter(pairs), title="t", per_shard=4, expected=10, released=True)
    return out, pairs, summary


def test_open_clip_train_loader(dataset):
    import open_clip
    from open_clip_train.data import get_wds_dataset

    _, pairs, summary = dataset
    assert summary["train_data"].endswith("{00000..00002}.tar")
    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # open_clip's bundled BPE, no download
    args = argparse.Namespace(
        train_data=summary["train_data"],
        val_data=summary["train_data"],
        train_num_samples=None,  # read from shards/sizes.json
        val_num_samples=None,
        dataset_resampled=False,
        train_data_upsampling_factors=None,
        batch_size=4,
        workers=0,
        world_size=1,
        seed=0,
    )

    def preprocess(img):
        return np.asarray(img.convert("RGB"), dtype=np.uint8)

    train = get_wds_dataset(args, preprocess, is_train=True, tokenizer=tokenizer)
    assert train.dataloader.num_samples >= 10  # sizes.json was found and read
    val = get_wds_dataset(args, preprocess, is_train=False, tokenizer=tokenizer)
    images, texts = [], []
    for img_batch, txt_batch in val.dataloader:
        images += list(np.asarray(img_batch))
        texts += list(np.asarray(txt_batch))
    assert len(images) == 10
    expected = {p.meta["key"]: p for p in pairs}
    for img, tokens in zip(images, texts, strict=True):
        match = [
            p for p in expected.values() if np.array_equal(tokenizer(p.meta["caption"])[0].numpy(), tokens)
        ]
        assert len(match) >= 1, "a caption in the batch is not one of the exported captions"
        ref = np.asarray(match[0].image, dtype=np.int16)
        assert img.shape == (224, 224, 3) and np.abs(img.astype(np.int16) - ref).mean() < 3  # JPEG q95


def test_hf_datasets_webdataset_builder(dataset, tmp_path):
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is in the dev extra")
    out, pairs, _ = dataset
    files = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": files}, split="train", cache_dir=str(tmp_path)
    )
    assert len(ds) == 10 and {"jpg", "txt", "json", "__key__"} <= set(ds.column_names)
    by_key = {p.meta["key"]: p for p in pairs}
    for row in ds:
        pair = by_key[row["__key__"]]
        assert row["txt"] == pair.meta["caption"] and row["json"]["wsi_id"] == pair.meta["wsi_id"]
        assert json.loads(row["json"]["edits"]) == pair.meta["edits"]
        assert row["json"]["mpp"] == pair.meta["mpp"] and row["json"]["file_id"] == (
            pair.meta["file_id"] or ""
        )
        img = (
            row["jpg"] if isinstance(row["jpg"], Image.Image) else Image.open(io.BytesIO(row["jpg"]["bytes"]))
        )
        diff = np.abs(np.asarray(img.convert("RGB"), np.int16) - np.asarray(pair.image, np.int16)).mean()
        assert diff < 3
