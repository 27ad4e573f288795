"""Turn an open_clip_train run into a model folder anyone can load, and read its training log.

The folder holds ``model.safetensors`` (weights only, no pickle), ``open_clip_config.json``
(``model_cfg`` + ``preprocess_cfg``, the layout open_clip's ``local-dir:`` loader reads) and a
model card ``README.md``. ``pathgen eval --model DIR`` and ``open_clip:NAME@DIR/model.safetensors``
both load it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pathgen.models.encoders import quiet_no_weights_warning
from pathgen.rundir import atomic_path, atomic_write, write_json

_TRAIN_LINE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+) \((\d+)%\)\]")
_LOSS = re.compile(r"(\w+_loss): ([-\d.eE+]+) \(([-\d.eE+]+)\)", re.I)
_SPEED = re.compile(r"Batch \(t\): [\d.]+, ([\d.eE+]+)/s")


def parse_log(path: Path) -> list[dict[str, Any]]:
    """Every ``Train Epoch`` line of open_clip_train's ``out.log``: epoch, samples seen in the
    epoch, per-loss values, total loss and samples/s, in order."""
    rows = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TRAIN_LINE.search(line)
        if not m:
            continue
        losses = {name.lower(): float(val) for name, val, _ in _LOSS.findall(line)}
        speed = _SPEED.search(line)
        rows.append(
            {
                "epoch": int(m.group(1)),
                "samples": int(m.group(2)),
                "samples_per_epoch": int(m.group(3)),
                "loss": sum(losses.values()) if losses else None,
                "losses": losses,
                "samples_per_s": float(speed.group(1)) if speed else None,
            }
        )
    for step, row in enumerate(rows):
        row["step"] = step
    return rows


def latest_checkpoint(stage_dir: Path) -> Path | None:
    ckpts = Path(stage_dir) / "checkpoints"
    numbered = sorted(ckpts.glob("epoch_[0-9]*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if numbered:
        return numbered[-1]
    latest = ckpts / "epoch_latest.pt"
    return latest if latest.exists() else None


def state_dict_from_checkpoint(path: Path) -> dict[str, Any]:
    """Weights of an open_clip_train checkpoint (``weights_only=True``), DDP ``module.`` stripped."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def export_model(
    model_name: str,
    checkpoint: Path,
    out: Path,
    config_files: list[str] | None = None,
    quick_gelu: bool = False,
) -> dict[str, Path]:
    """Write ``model.safetensors`` + ``open_clip_config.json`` for ``checkpoint`` under ``out``;
    ``quick_gelu`` (trained with ``--force-quick-gelu``) is written into ``model_cfg`` so every
    ``local-dir:`` load (eval, embed) builds the activation the weights were trained with."""
    import open_clip
    from safetensors.torch import save_file

    from pathgen.models.encoders import register_model_configs

    register_model_configs()
    if config_files:
        from pathgen.train.launch import register_extra_configs

        register_extra_configs(config_files)
    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None:
        raise ValueError(f"unknown open_clip model {model_name!r}")
    if quick_gelu:
        model_cfg = {**model_cfg, "quick_gelu": True}
    with quiet_no_weights_warning():
        model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    state = state_dict_from_checkpoint(checkpoint)
    model.load_state_dict(state, strict=True)
    preprocess = dict(open_clip.get_model_preprocess_cfg(model))
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "open_clip_model": model_name})
    config = {"model_cfg": model_cfg, "preprocess_cfg": _jsonable(preprocess), "model_name": model_name}
    write_json(out / "open_clip_config.json", config)
    return {"weights": out / "model.safetensors", "config": out / "open_clip_config.json"}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def loss_plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> Path | None:
    """PNG of the loss per logged step, one line per stage (matplotlib Agg)."""
    points = {k: [(r["step"], r["loss"]) for r in v if r["loss"] is not None] for k, v in curves.items()}
    if not any(points.values()):
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    offset = 0
    for name, pts in points.items():
        if pts:
            ax.plot([offset + s for s, _ in pts], [v for _, v in pts], label=name)
            offset += pts[-1][0] + 1
    ax.set_xlabel("logged step")
    ax.set_ylabel("contrastive loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _stage_row(st: dict[str, Any]) -> str:
    curve = [r for r in st["curve"] if r["loss"] is not None]
    # the first logged step includes start-up, so throughput averages the others
    speed = [r["samples_per_s"] for r in st["curve"] if r.get("samples_per_s")][1:] or [0.0]
    head = f"| {st['name']} | `{st['data']}` | {st['num_samples']} | {st['epochs']} | {st['lr']} |"
    if not curve:
        return head + " 0 | | | |"
    return (
        f"{head} {len(curve)} | {curve[0]['loss']:.4f} | {curve[-1]['loss']:.4f} | "
        f"{sum(speed) / len(speed):.1f} |"
    )


def model_card(summary: dict[str, Any]) -> str:
    """Markdown card: model, initialisation, data and schedule per stage, loss curve, how to load."""
    init = summary.get("pretrained") or "random"
    lines = [
        f"# {summary['model']} trained with pathgen",
        "",
        f"- architecture: open_clip `{summary['model']}`; initialisation: `{init}`",
        f"- precision: {summary['precision']}; batch size per process: {summary['batch_size']}; "
        f"processes: {summary['gpus']}",
        "",
        "## Schedule",
        "",
        "| stage | data | samples/epoch | epochs | lr | logged steps | first loss | last loss | samples/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for st in summary["stages"]:
        lines.append(_stage_row(st))
        for src in st.get("sources") or []:
            lines.append(
                f"| ↳ {src['name']} | {src['shards']} shards | {src['n_samples']} | "
                f"weight {src['weight']} | | | | | |"
            )
    lines += [
        "",
        "![loss](loss.png)" if summary.get("loss_png") else "",
        "",
        "## Load",
        "",
        "```",
        "pathgen eval --model DIR --benchmark crc100k --data CRC-VAL-HE-7K --out results/",
        f"pathgen eval --model open_clip:{summary['model']}@DIR/model.safetensors ...",
        "```",
        "",
        "Trained with open_clip_train through `pathgen train`; the full argument lists are in training.json.",
        "",
    ]
    return "\n".join(lines)


def write_card(out: Path, summary: dict[str, Any]) -> Path:
    return atomic_write(out / "README.md", model_card(summary))
