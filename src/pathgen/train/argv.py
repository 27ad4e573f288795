"""From a :class:`TrainConfig` stage to the argument list of ``open_clip_train.main.main``.

Data specs are resolved here: a brace pattern, a folder of ``*.tar`` shards, or a mixing
manifest. A mixture becomes open_clip_train's weighted, resampled form: one ``::``-separated
component per shard with ``--train-data-upsampling-factors`` = source weight / shards in the
source, so a source's share of the samples equals its weight whatever its shard count.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pathgen.export.mixing import MixSet, load_manifest
from pathgen.train.config import StageConfig, TrainConfig

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class ResolvedData:
    train_data: str
    num_samples: int
    upsampling_factors: str | None = None
    resampled: bool = False
    sources: list[dict] | None = None


def expand(pattern: str) -> list[str]:
    """Shard paths of one pattern: a directory's ``*.tar`` or a brace pattern's existing files."""
    import braceexpand

    path = Path(pattern).expanduser()
    if path.is_dir():
        urls = sorted(str(p) for p in path.glob("*.tar"))
    else:
        urls = [u for part in pattern.split("::") for u in braceexpand.braceexpand(part)]
        missing = [u for u in urls if not Path(u).exists()]
        if missing:
            raise FileNotFoundError(f"shard(s) not found: {', '.join(missing[:3])}")
    if not urls:
        raise FileNotFoundError(f"no *.tar shards in {pattern}")
    return urls


def count_samples(urls: list[str]) -> int:
    """Samples in shards: from ``sizes.json`` beside them when it lists every shard, else by key."""
    total = 0
    by_dir: dict[Path, list[str]] = {}
    for u in urls:
        by_dir.setdefault(Path(u).parent, []).append(u)
    for folder, shard_urls in by_dir.items():
        sizes_file = folder / "sizes.json"
        sizes = json.loads(sizes_file.read_text()) if sizes_file.exists() else {}
        for u in shard_urls:
            name = Path(u).name
            if name in sizes:
                total += int(sizes[name])
            else:
                with tarfile.open(u) as tar:
                    total += len({m.name.split("/")[-1].split(".", 1)[0] for m in tar if m.isfile()})
    return total


def resolve_data(spec: str) -> ResolvedData:
    """A shard pattern/folder, or a ``.yaml/.yml/.json`` mixing manifest."""
    if Path(spec).suffix.lower() in MANIFEST_SUFFIXES:  # a missing manifest says so, not "no shards"
        return resolve_mixture(load_manifest(spec))
    urls = expand(spec)
    return ResolvedData(train_data="::".join(urls), num_samples=count_samples(urls))


def resolve_mixture(sources: list[MixSet]) -> ResolvedData:
    """Every set's shards (which must exist), each shard carrying its set's ``weight``.

    open_clip_train picks a shard with probability proportional to its factor and reads all of it,
    so a set's share of the samples is weight x its size: with every weight 1.0 the sets are drawn
    in proportion to their sizes (plain concatenation), and 2.0 doubles a set, the meaning the
    mixing manifest documents."""
    parts, factors, described = [], [], []
    total = 0
    for src in sources:
        urls = [u for p in src.patterns for u in expand(p)]
        n = src.n_samples or count_samples(urls)
        total += n
        parts.extend(urls)
        factors.extend([f"{src.weight:.6g}"] * len(urls))
        described.append({"name": src.name, "shards": len(urls), "n_samples": n, "weight": src.weight})
    return ResolvedData(
        train_data="::".join(parts),
        num_samples=total,
        upsampling_factors="::".join(factors),
        resampled=True,
        sources=described,
    )


def activation(cfg: TrainConfig) -> tuple[bool, str]:
    """(pass ``--force-quick-gelu``?, the activation and why), decided once for every stage.

    Why once: stage 2 starts from stage 1's weights (a file with no tag), but those weights were
    trained with stage 1's activation, so it must stay the same. A pretrained tag trained with
    QuickGELU (``openai``) needs it: open_clip_train only warns and trains with plain GELU otherwise.
    """
    import open_clip

    from pathgen.models.encoders import register_model_configs, tag_needs_quick_gelu

    name = cfg.model_name()
    register_model_configs()
    model_cfg = open_clip.get_model_config(name) or {}
    if model_cfg.get("quick_gelu"):
        return False, f"QuickGELU (the {name} config)"
    if cfg.force_quick_gelu:
        return True, "QuickGELU (--force-quick-gelu)"
    tag = cfg.pretrained if cfg.pretrained and not Path(cfg.pretrained).expanduser().is_file() else None
    if tag_needs_quick_gelu(name, tag):
        return True, f"QuickGELU (the {tag} weights of {name} were trained with it)"
    if cfg.pretrained and tag is None:
        return (
            False,
            "GELU (a checkpoint file: pass --force-quick-gelu if it holds OpenAI/PathGen-CLIP weights)",
        )
    return False, "GELU"


def stage_argv(
    cfg: TrainConfig, stage: StageConfig, data: ResolvedData, logs: Path, pretrained: str | None,
    quick_gelu: bool | None = None,
) -> list[str]:  # fmt: skip
    """The open_clip_train arguments of one stage (everything explicit, nothing left to its defaults
    that pathgen's config decides). ``quick_gelu``: :func:`activation`'s decision, when the caller
    already made it once for every stage (it is worked out here otherwise)."""
    argv = [
        "--train-data",
        data.train_data,
        "--train-num-samples",
        str(stage.train_num_samples or data.num_samples),
        "--dataset-type",
        "webdataset",
        "--model",
        cfg.model_name(),
        "--batch-size",
        str(cfg.batch_size),
        "--epochs",
        str(stage.epochs),
        "--lr",
        str(stage.lr),
        "--wd",
        str(cfg.wd),
        "--warmup",
        str(stage.warmup),
        "--workers",
        str(cfg.workers),
        "--precision",
        cfg.precision,
        "--device",
        cfg.device,
        "--seed",
        str(cfg.seed),
        "--logs",
        str(logs),
        "--name",
        stage.name,
        "--save-frequency",
        str(cfg.save_frequency),
        "--save-most-recent",
        "--log-every-n-steps",
        str(cfg.log_every_n_steps),
        "--zeroshot-frequency",
        "0",
        "--val-frequency",
        "0",
        "--report-to",
        "",
    ]
    if data.resampled:
        argv.append("--dataset-resampled")
    if data.upsampling_factors:
        argv += ["--train-data-upsampling-factors", data.upsampling_factors]
    if pretrained:
        argv += ["--pretrained", pretrained]
    if cfg.resume:
        argv += ["--resume", cfg.resume]
    if cfg.grad_checkpointing:
        argv.append("--grad-checkpointing")
    if quick_gelu if quick_gelu is not None else activation(cfg)[0]:
        argv.append("--force-quick-gelu")
    if cfg.aug_cfg:
        argv += ["--aug-cfg", *[f"{k}={v}" for k, v in cfg.aug_cfg.items()]]
    return argv + list(cfg.extra_args)
