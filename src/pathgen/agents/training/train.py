"""`pathgen agents train`: supervised fine-tuning of one agent, written as a servable HF model folder.

``OUT`` itself is the model (``config.json``, ``model.safetensors``, the processor with its chat
template), so ``pathgen caption RUN --model hf:OUT`` and ``vllm serve OUT`` load it as is; beside it
``README.md`` (the model card), ``loss_curve.png``, ``training.json`` and ``checkpoints/`` (what
``--resume`` continues from; a re-run with the same folder resumes by default). LoRA adapters are
merged into the weights before saving. Several GPUs: the command re-launches itself under
``torchrun`` (the line is printed) and the Trainer runs data-parallel; rank 0 writes the model.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pathgen.agents.training import sft
from pathgen.agents.training.config import AgentTrainConfig
from pathgen.agents.training.formats import read_chat
from pathgen.rundir import atomic_path, atomic_write, write_json

TINY_VOCAB = 2000
ENV_LAUNCHED = "PATHGEN_AGENTS_TORCHRUN"


def launch_command(argv: list[str], gpus: int) -> list[str]:
    """The torchrun line that runs this same command on ``gpus`` processes."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
        "-m", "pathgen.cli", "agents", "train", *argv,
    ]  # fmt: skip


def needs_launch(cfg: AgentTrainConfig) -> bool:
    return cfg.gpus > 1 and "LOCAL_RANK" not in os.environ and not os.environ.get(ENV_LAUNCHED)


def _texts(data: Path, agent: str) -> list[str]:
    texts = []
    for rec in read_chat(data / agent / "chat_train.jsonl"):
        for m in rec["messages"]:
            content = m["content"]
            texts.extend(
                [content] if isinstance(content, str) else [p["text"] for p in content if p.get("text")]
            )
    return texts


def load_base(base: str, data: Path, agent: str, seed: int, cuda: bool) -> tuple[Any, Any]:
    """``tiny``: the tiny LLaVA built in code, its BPE trained on this set's texts (deterministic,
    so a resumed run rebuilds the same base); otherwise any transformers image-text-to-text model."""
    if base == "tiny":
        from pathgen.models.tiny_vlm import build_tiny_vlm

        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus.json"
            corpus.write_text(json.dumps([{"caption": t} for t in _texts(data, agent)]), encoding="utf-8")
            model, processor = build_tiny_vlm(corpus, seed=seed, vocab_size=TINY_VOCAB)
        return model.train(), processor
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(base)
        dtype = torch.bfloat16 if cuda else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype)
    except OSError as exc:
        raise FileNotFoundError(f"cannot load a transformers VLM from {base!r}: {exc}") from exc
    return model, processor


def loss_curve(history: list[dict[str, Any]], path: Path) -> Path | None:
    """PNG of the training (and evaluation) loss per step (matplotlib Agg)."""
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(*zip(*train, strict=True), label="train")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("token cross-entropy")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def card(summary: dict[str, Any]) -> str:
    s, c = summary, summary["config"]
    method = f"LoRA (merged), r={c['lora_r']}" if c["lora"] else "full fine-tuning"
    lines = [
        f"# pathgen {s['agent']} agent",
        "",
        f"Fine-tuned by `pathgen agents train` (TRL {s['versions']['trl']} SFTTrainer, "
        f"transformers {s['versions']['transformers']}).",
        "",
        "| | |",
        "|---|---|",
        f"| base | `{s['base']}` |",
        f"| data | `{s['data']}` ({s['train_samples']} train / {s['validation_samples']} validation) |",
        f"| method | {method} |",
        f"| steps | {s['steps']} ({s['epochs']:.2f} epochs), lr {c['lr']}, batch {c['batch_size']} |",
        f"| loss | {s['first_loss']} -> {s['last_loss']} |",
        f"| validation loss | {s['eval_loss']} |",
        f"| time | {s['seconds']:.1f} s |",
        "",
        "![loss curve](loss_curve.png)",
        "",
        "Use: `pathgen caption RUN --model hf:THIS_FOLDER` (or per agent in the config), "
        "`vllm serve THIS_FOLDER`; evaluate with `pathgen agents eval`.",
        "",
    ]
    return "\n".join(lines)


def train_agent(
    agent: str,
    base: str,
    data: str | Path,
    out: str | Path,
    cfg: AgentTrainConfig | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune ``base`` on ``data/<agent>`` and write the merged model to ``out``; returns a summary."""
    import torch
    import transformers
    import trl
    from transformers.trainer_utils import get_last_checkpoint

    cfg = cfg or AgentTrainConfig()
    data, out = Path(data), Path(out)
    if agent not in ("describe", "revise", "summarize"):
        raise ValueError(f"unknown agent {agent!r}; agents: describe, revise, summarize")
    if not (data / agent / "hf" / "train.parquet").is_file():
        raise FileNotFoundError(
            f"{data / agent / 'hf' / 'train.parquet'} not found: run `pathgen agents data`"
        )
    torch.manual_seed(cfg.seed)
    cuda = torch.cuda.is_available()
    model, processor = load_base(base, data, agent, cfg.seed, cuda)
    train_ds = sft.load_split(data, agent, "train", processor)
    if train_ds is None:
        raise ValueError(f"{data / agent} has no training samples")
    eval_ds = sft.load_split(data, agent, "validation", processor) if cfg.eval_samples else None
    if eval_ds is not None:  # the validation loss per epoch is a curve, not the evaluation: a sample
        eval_ds = eval_ds.select(range(min(len(eval_ds), cfg.eval_samples)))
    out.mkdir(parents=True, exist_ok=True)
    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:  # a tiny model has no memory to save: recomputing would only cost time
        checkpointing = base != "tiny"
    args = sft.sft_config(out, cfg, cuda, eval_ds is not None, checkpointing)
    trainer = sft.make_trainer(
        model, processor, train_ds, eval_ds, args, sft.lora_config(cfg) if cfg.lora else None
    )
    last = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").is_dir() else None
    if last:
        echo(f"resuming from {last}")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    summary = {
        "agent": agent,
        "base": base,
        "data": str(data.resolve()),
        "out": str(out.resolve()),
        "config": cfg.model_dump(),
        "train_samples": len(train_ds),
        "validation_samples": len(eval_ds) if eval_ds is not None else 0,
        "steps": trainer.state.global_step,
        "epochs": float(trainer.state.epoch or 0.0),
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "eval_loss": round(eval_losses[-1], 4) if eval_losses else None,
        "seconds": seconds,
        "samples_per_s": round(len(train_ds) * float(trainer.state.epoch or 0.0) / max(seconds, 1e-9), 3),
        "resumed_from": last,
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "history": history,
    }
    if trainer.is_world_process_zero():
        save_model(sft.merged_model(trainer), processor, out)
        loss_curve(history, out / "loss_curve.png")
        atomic_write(out / "README.md", card(summary))
        write_json(out / "training.json", summary)
    return summary


def save_model(model: Any, processor: Any, out: Path) -> None:
    """The trained model with its generation ids set, saved as pathgen saves HF folders
    (:func:`pathgen.models.hf_folder.save_hf_folder`: atomic per file, umask modes)."""
    model = model.eval()
    tokenizer = getattr(processor, "tokenizer", processor)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    from pathgen.models.hf_folder import save_hf_folder

    save_hf_folder(model, processor, out)
