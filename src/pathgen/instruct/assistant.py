"""`pathgen assistant train`: the LLaVA recipe in two stages on `pathgen instruct` output.

Stage 1 aligns the projector: only it trains, on image-caption pairs (``pairs.json``), the LLM and
the vision tower frozen (LLaVA: lr 1e-3). Stage 2 instruction-tunes on the conversations and closed
questions (``llava.json``): the projector and the LLM train, fully or through LoRA adapters merged
on save, the vision tower stays frozen (LLaVA: lr 2e-5). Each multi-turn conversation becomes one
example per answer (the turns before it as the prompt), so every answer is a completion the loss
sees. The result is a plain transformers folder (``config.json``, safetensors, processor with its
chat template) that ``AutoModelForImageTextToText``, vLLM and ``pathgen eval --task mcq`` load.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pathgen.config import AssistantConfig, dump_section
from pathgen.rundir import atomic_write, write_json

STAGE1_PROMPT = "Describe the image briefly."
# LoRA on the LLM's projections only (the CLIP tower has q/k/v_proj too, and stays frozen).
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def stage1_rows(data: Path) -> list[dict[str, Any]]:
    pairs = json.loads((data / "pairs.json").read_text(encoding="utf-8"))
    return [
        {
            "image": data / "images" / p["image"],
            "prompt": [{"role": "user", "content": STAGE1_PROMPT}],
            "completion": [{"role": "assistant", "content": p["caption"]}],
        }
        for p in pairs
    ]


def stage2_rows(data: Path) -> list[dict[str, Any]]:
    """One example per answer of every LLaVA item, its history as the prompt."""
    items = json.loads((data / "llava.json").read_text(encoding="utf-8"))
    rows = []
    for item in items:
        history: list[dict[str, str]] = []
        for turn in item["conversations"]:
            text = turn["value"].replace("<image>\n", "").replace("<image>", "").strip()
            if turn["from"] == "human":
                history.append({"role": "user", "content": text})
            else:
                rows.append(
                    {
                        "image": data / "images" / item["image"],
                        "prompt": list(history),
                        "completion": [{"role": "assistant", "content": text}],
                    }
                )
                history.append({"role": "assistant", "content": text})
    return rows


def _check_data(data: Path) -> None:
    for name in ("llava.json", "pairs.json", "images"):
        if not (data / name).exists():
            raise FileNotFoundError(
                f"{data} has no {name}: point --data at a `pathgen instruct` output folder"
            )


def train_assistant(
    clip: Path, llm: str, data: Path, out: Path, cfg: AssistantConfig, log: Any = print
) -> dict[str, Any]:
    """Build, train (stage 1 then stage 2) and save the assistant; returns the training summary."""
    import torch

    from pathgen.instruct.model import build_llava, tiny_llm
    from pathgen.instruct.sft import sft

    data, out = Path(data), Path(out)
    _check_data(data)
    torch.manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory(prefix="pathgen-assistant-") as scratch:
        source = str(tiny_llm(Path(scratch) / "llm", cfg.seed)) if llm == "tiny" else llm
        model, processor = build_llava(Path(clip), source, cfg.vision_feature_layer)
        model.config.use_cache = False
        common = {"batch_size": cfg.batch_size, "max_length": cfg.max_length, "seed": cfg.seed}
        logs: dict[str, Any] = {}
        started = time.perf_counter()
        if cfg.stage1_epochs > 0:
            rows = stage1_rows(data)
            log(f"stage 1: projector on {len(rows)} image-caption pairs")
            model, logs["stage1"] = sft(
                model, processor, rows, Path(scratch) / "s1", epochs=cfg.stage1_epochs, lr=cfg.stage1_lr,
                trainable=lambda n: "multi_modal_projector" in n, **common,
            )  # fmt: skip
        if cfg.stage2_epochs > 0:
            rows = stage2_rows(data)
            log(f"stage 2: {'LoRA' if cfg.lora else 'full'} instruction tuning on {len(rows)} answers")
            lora = None
            if cfg.lora:
                lora = {
                    "r": cfg.lora_r,
                    "lora_alpha": cfg.lora_alpha,
                    "target_modules": LORA_TARGETS,
                    "modules_to_save": ["multi_modal_projector"],
                }
            model, logs["stage2"] = sft(
                model, processor, rows, Path(scratch) / "s2", epochs=cfg.stage2_epochs, lr=cfg.stage2_lr,
                trainable=None if cfg.lora else (lambda n: cfg.tune_vision or "vision_tower" not in n),
                lora=lora, **common,
            )  # fmt: skip
    for p in model.parameters():
        p.requires_grad_(False)
    model.config.use_cache = True
    model.eval()
    from pathgen.models.hf_folder import save_hf_folder

    save_hf_folder(model, processor, out)
    summary = {
        "clip": str(clip),
        "llm": llm,
        "data": str(data),
        "settings": dump_section(cfg),
        "train_s": round(time.perf_counter() - started, 1),
        "losses": logs,
    }
    write_json(out / "training.json", summary)
    atomic_write(out / "README.md", _card(summary))
    return summary


def _card(summary: dict[str, Any]) -> str:
    last = {k: (v[-1]["loss"] if v else None) for k, v in summary["losses"].items()}
    return (
        "# pathgen assistant\n\n"
        "A LLaVA-style model (`LlavaForConditionalGeneration`): a CLIP vision tower converted from "
        f"`{summary['clip']}`, the LLM `{summary['llm']}`, an mlp2x_gelu projector; trained by "
        f"`pathgen assistant train` on `{summary['data']}` ({summary['train_s']} s).\n\n"
        f"Final training losses: {last}\n\n"
        "Load with `transformers.AutoModelForImageTextToText` + `AutoProcessor`, or serve with vLLM.\n"
    )
