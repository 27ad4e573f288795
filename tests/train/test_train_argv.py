"""`pathgen train` argument building: shards, mixing manifests, launch lines, log parsing (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import webdataset as wds
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.train.argv import count_samples, resolve_data, stage_argv
from pathgen.train.config import TrainConfig
from pathgen.train.export import parse_log
from pathgen.train.run import command


def make_shards(folder: Path, counts: list[int], sizes_json: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths, sizes = [], {}
    for i, n in enumerate(counts):
        path = folder / f"{i:05d}.tar"
        with wds.TarWriter(str(path)) as w:
            for j in range(n):
                w.write(
                    {"__key__": f"s{i}_{j}", "jpg": b"\xff\xd8fake", "txt": "a caption", "json": {"i": j}}
                )
        paths.append(path)
        sizes[path.name] = n
    if sizes_json:
        (folder / "sizes.json").write_text(json.dumps(sizes))
    return paths


def test_count_samples_from_sizes_json_or_tar_keys(tmp_path):
    with_sizes = make_shards(tmp_path / "a", [3, 2])
    assert count_samples([str(p) for p in with_sizes]) == 5
    without = make_shards(tmp_path / "b", [4], sizes_json=False)
    assert count_samples([str(p) for p in without]) == 4


def test_plain_shards_become_one_source(tmp_path):
    make_shards(tmp_path / "gen", [3, 2])
    brace = resolve_data(str(tmp_path / "gen" / "{00000..00001}.tar"))
    folder = resolve_data(str(tmp_path / "gen"))
    assert brace.train_data == folder.train_data
    assert brace.num_samples == 5 and not brace.resampled and brace.upsampling_factors is None
    with pytest.raises(FileNotFoundError):
        resolve_data(str(tmp_path / "gen" / "{00000..00005}.tar"))


def test_mixing_manifest_weights_are_upsampling_factors_per_shard(tmp_path):
    make_shards(tmp_path / "gen", [3, 3])
    make_shards(tmp_path / "quilt", [10])
    manifest = tmp_path / "mix.yaml"
    manifest.write_text(
        "- {name: generated, shards: gen, weight: 0.7}\n"
        "- {name: quilt, shards: 'quilt/{00000..00000}.tar', weight: 0.3, n_samples: 1000}\n"
    )
    data = resolve_data(str(manifest))
    assert data.resampled
    assert len(data.train_data.split("::")) == 3
    # every shard carries its set's weight: a set's share of samples is weight x its size
    assert data.upsampling_factors == "0.7::0.7::0.3"
    assert data.num_samples == 6 + 1000
    cfg = TrainConfig(
        out=tmp_path / "o",
        model="pathgen-tiny",
        pretrained=None,
        stage1={"name": "stage1", "data": str(manifest)},
    )
    argv = stage_argv(cfg, cfg.stage1, data, tmp_path / "o" / "logs", None)
    assert "--dataset-resampled" in argv
    assert argv[argv.index("--train-data-upsampling-factors") + 1] == "0.7::0.7::0.3"
    assert argv[argv.index("--model") + 1] == "pathgen-tiny"
    assert "--pretrained" not in argv


def test_torchrun_line_for_several_gpus(tmp_path):
    make_shards(tmp_path / "gen", [2])
    cfg = TrainConfig(out=tmp_path / "o", gpus=4, stage1={"name": "stage1", "data": str(tmp_path / "gen")})
    cmd = command(cfg, ["--model", "ViT-B-16"])
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc_per_node=4" in cmd and cmd[-2:] == ["--model", "ViT-B-16"]
    assert cmd[cmd.index("-m", 3) + 1] == "pathgen.train.launch"


def test_dry_run_prints_both_stages_with_stage2_from_stage1(tmp_path):
    make_shards(tmp_path / "gen", [2])
    make_shards(tmp_path / "ext", [2])
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--out",
            str(tmp_path / "o"),
            "--train-data",
            str(tmp_path / "gen"),
            "--stage2-data",
            str(tmp_path / "ext"),
            "--gpus",
            "2",
            "--dry-run",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("$ ")]
    assert len(lines) == 2 and all("torch.distributed.run" in line for line in lines)
    assert "--pretrained openai" in lines[0]
    assert f"--pretrained {tmp_path / 'o' / 'stage1' / 'model.safetensors'}" in lines[1]


def test_no_data_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0
    assert "no training data" in res.output and "(())" not in res.output and "Value error" not in res.output


def test_parse_open_clip_train_log(tmp_path):
    log = tmp_path / "out.log"
    log.write_text(
        "2026-01-01,00:00:00 | INFO | Start epoch 0\n"
        "2026-01-01,00:00:01 | INFO | Train Epoch: 0 [ 32/192 (17%)] Data (t): 1.900 Batch (t): 3.427, "
        "9.33637/s, 9.33637/s/gpu LR: 0.000333 Logit Scale: 14.286 Contrastive_loss: 3.6639 (3.6639) "
        "Loss: 3.6639 (3.6639)\n"
        "2026-01-01,00:00:02 | INFO | Train Epoch: 0 [ 64/192 (33%)] Data (t): 0.696 Batch (t): 3.009, "
        "10.6363/s, 10.6363/s/gpu LR: 0.000667 Logit Scale: 14.281 Contrastive_loss: 3.2421 (3.4530) "
        "Loss: 3.2421 (3.4530)\n"
    )
    rows = parse_log(log)
    assert [r["loss"] for r in rows] == [3.6639, 3.2421]
    assert rows[1]["samples"] == 64 and rows[1]["samples_per_s"] == pytest.approx(10.6363)
    assert [r["step"] for r in rows] == [0, 1]


def test_train_reads_the_manifest_ingest_writes(tmp_path):
    from pathgen.export.mixing import dataset_entry, write_manifest

    make_shards(tmp_path / "gen", [2])
    make_shards(tmp_path / "pairs" / "quilt" / "shards", [3, 1])
    manifest = write_manifest(tmp_path / "pairs" / "mix.yaml", [dataset_entry(tmp_path / "pairs" / "quilt")])
    assert "version: 1" in manifest.read_text()
    args = ["train", "--out", str(tmp_path / "o"), "--train-data", str(tmp_path / "gen"), "--dry-run"]
    res = CliRunner().invoke(app, [*args, "--stage2-data", str(manifest), "--pretrained", "none"])
    assert res.exit_code == 0, res.output
    stage2 = [line for line in res.output.splitlines() if line.startswith("$ ")][1]
    assert str(tmp_path / "pairs" / "quilt" / "shards" / "00001.tar") in stage2
    assert "--train-num-samples 4" in stage2


def test_every_data_argument_is_checked_before_training(tmp_path):
    make_shards(tmp_path / "gen", [2])
    out = tmp_path / "o"
    base = ["train", "--out", str(out), "--train-data", str(tmp_path / "gen"), "--model", "pathgen-tiny"]
    base += ["--pretrained", "none", "--device", "cpu"]
    res = CliRunner().invoke(app, [*base, "--stage2-data", str(tmp_path / "pairs" / "mix.yaml")])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "stage2 data" in text and "mixing manifest not found" in text
    assert not (out / "logs").exists(), "stage 1 must not start when stage 2's data is missing"

    (tmp_path / "bad.yaml").write_text(
        "version: 1\nsets:\n  - {name: x, shards: 'x/{0..1}.tar', wieght: 2}\n"
    )
    res = CliRunner().invoke(app, [*base, "--stage2-data", str(tmp_path / "bad.yaml")])
    assert res.exit_code == 2 and "unknown key(s) wieght" in res.output
    assert not (out / "logs").exists()


def _dry(tmp_path: Path, *extra: str) -> tuple[str, list[str]]:
    make_shards(tmp_path / "gen", [2])
    make_shards(tmp_path / "ext", [2])
    args = ["train", "--out", str(tmp_path / "o"), "--train-data", str(tmp_path / "gen")]
    res = CliRunner().invoke(app, [*args, "--stage2-data", str(tmp_path / "ext"), *extra, "--dry-run"])
    assert res.exit_code == 0, res.output
    return res.output, [line for line in res.output.splitlines() if line.startswith("$ ")]


def test_openai_weights_train_with_quick_gelu_in_both_stages(tmp_path):
    out, lines = _dry(tmp_path)  # the defaults: ViT-B-16 from the openai weights
    assert "activation: QuickGELU (the openai weights of ViT-B-16 were trained with it)" in out
    assert len(lines) == 2 and all(line.endswith("--force-quick-gelu") for line in lines)
    out, lines = _dry(tmp_path, "--pretrained", "laion2b_s34b_b88k")
    assert "activation: GELU" in out and not any("quick-gelu" in line for line in lines)
    out, lines = _dry(tmp_path, "--model", "ViT-B-16-quickgelu")  # the config has it: no flag needed
    assert "activation: QuickGELU (the ViT-B-16-quickgelu config)" in out
    assert not any("quick-gelu" in line for line in lines)
    ckpt = tmp_path / "pathgen-clip.pt"
    ckpt.write_bytes(b"weights")
    out, lines = _dry(tmp_path, "--pretrained", str(ckpt))
    assert "pass --force-quick-gelu if it holds OpenAI/PathGen-CLIP weights" in out
    out, lines = _dry(tmp_path, "--pretrained", str(ckpt), "--force-quick-gelu")
    assert "activation: QuickGELU (--force-quick-gelu)" in out and lines[1].endswith("--force-quick-gelu")


def test_quick_gelu_reaches_open_clip_train_and_the_exported_model(tmp_path):
    import open_clip
    import torch
    from open_clip_train.params import parse_args

    from pathgen.models import load_encoder
    from pathgen.models.encoders import register_model_configs
    from pathgen.train.argv import ResolvedData
    from pathgen.train.export import export_model

    make_shards(tmp_path / "gen", [2])
    cfg = TrainConfig(
        out=tmp_path / "o", model="pathgen-tiny", pretrained=None, force_quick_gelu=True,
        stage1={"name": "stage1", "data": str(tmp_path / "gen")},
    )  # fmt: skip
    argv = stage_argv(cfg, cfg.stage1, ResolvedData("x.tar", 2), tmp_path / "logs", None)
    args = parse_args(argv)  # open_clip_train's own parser: the flag is the one it reads
    assert args.force_quick_gelu
    register_model_configs()
    model = open_clip.create_model(args.model, force_quick_gelu=args.force_quick_gelu)
    names = {type(m).__name__ for m in model.modules()}
    assert "QuickGELU" in names and "GELU" not in names
    # the exported folder records it, so eval and embed rebuild QuickGELU from it
    torch.save({"state_dict": model.state_dict()}, tmp_path / "epoch_1.pt")
    export_model("pathgen-tiny", tmp_path / "epoch_1.pt", tmp_path / "model", quick_gelu=True)
    assert json.loads((tmp_path / "model" / "open_clip_config.json").read_text())["model_cfg"]["quick_gelu"]
    enc = load_encoder(str(tmp_path / "model"), device="cpu")
    assert "QuickGELU" in {type(m).__name__ for m in enc.model.modules()}
