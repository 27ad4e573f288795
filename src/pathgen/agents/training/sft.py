"""The TRL glue: a vision-language SFT run of TRL's ``SFTTrainer`` on a pathgen training set.

Kept in one small module because the assistant's training (``pathgen.instruct``) does the same
work and the two will share it. The set is TRL's conversational prompt-completion form
(``images``, ``prompt``, ``completion``; see :mod:`formats`), which TRL's VLM collator renders with
the processor's chat template and trains on the completion only.

One thing TRL does not do for a VLM: end the completion with the end-of-sequence token. A model
whose chat template does not close assistant turns with it never learns to stop, and every answer
would run to ``max_tokens`` (the chain then rejects it as cut off). :func:`needs_eos` detects such a
template and the completion gets the token appended.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = ("images", "prompt", "completion")


def needs_eos(processor: Any) -> bool:
    """True when the chat template does not put the EOS token after an assistant turn."""
    tokenizer = getattr(processor, "tokenizer", processor)
    eos = tokenizer.eos_token
    if not eos:
        return False
    text = processor.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "ANSWER"}], tokenize=False
    )
    return eos not in text[text.rfind("ANSWER") :]


def load_split(data: Path, agent: str, split: str, processor: Any) -> Any:
    """One split of an agent's set as a ``datasets.Dataset`` in the columns TRL reads, or None when
    it is empty (a run with one slide has no validation split; ``datasets`` refuses empty files)."""
    import pyarrow.parquet as pq
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    path = Path(data) / agent / "hf" / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the sets with `pathgen agents data`")
    if pq.ParquetFile(path).metadata.num_rows == 0:
        return None
    ds = load_dataset("parquet", data_files=str(path), split="train")
    ds = ds.select_columns(list(COLUMNS))
    if needs_eos(processor):
        eos = getattr(processor, "tokenizer", processor).eos_token
        ds = ds.map(
            lambda row: {"completion": [{**m, "content": m["content"] + eos} for m in row["completion"]]}
        )
    return ds


def sft_config(out: Path, cfg: Any, cuda: bool, has_eval: bool, checkpointing: bool = True) -> Any:
    """TRL's ``SFTConfig`` for a pathgen run (checkpoints under ``out/checkpoints``)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="epoch" if has_eval else "no",
        max_length=cfg.max_length,
        bf16=cuda,
        use_cpu=not cuda,
        seed=cfg.seed,
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
        gradient_checkpointing=checkpointing,
    )


def lora_config(cfg: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def make_trainer(model: Any, processor: Any, train_ds: Any, eval_ds: Any, args: Any, peft_config: Any) -> Any:
    from trl import SFTTrainer

    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=peft_config,
    )


def merged_model(trainer: Any) -> Any:
    """The trained model with LoRA adapters (if any) merged in: a plain transformers model."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model
