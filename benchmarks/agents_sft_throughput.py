"""LoRA SFT throughput of `pathgen agents train` next to the same TRL run written by hand.

Both runs train the same model (the tiny LLaVA built in code, or --base), on the same revise set
(built here from real CRC patches and real PathGen captions), with the same SFTConfig and LoRA
config, for the same number of steps; the hand-written baseline calls TRL directly (SFTTrainer on
the parquet dataset, no pathgen code in the loop). Reported: samples/s of each, measured over the
training loop only, and the ratio pathgen / TRL (goal >= 0.95). On a GPU both run in bf16.

    python benchmarks/agents_sft_throughput.py --steps 30 --batch-size 8
    python benchmarks/agents_sft_throughput.py --steps 200 --batch-size 32 --repeat 3   # GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pathgen.sample_data import shared_data


def build_sets(root: Path, n: int) -> Path:
    from pathgen.agents.training.config import AgentDataConfig
    from pathgen.agents.training.data import build_agent_data
    from pathgen.agents.training.sources import load_descriptions

    data = shared_data()
    if data is None:
        sys.exit("shared data not found (set PATHGEN_SHARED_DATA)")
    captions = json.loads((data / "captions" / "pathgen-1.6m-sample.json").read_text())[:n]
    patches = sorted((data / "patches" / "crc-val-he-7k").glob("*/*.png"))
    from PIL import Image

    rows = []
    for i, rec in enumerate(captions):  # rotated copies: one distinct image per description
        path = root / f"img{i}.png"
        Image.open(patches[i % len(patches)]).rotate(90 * ((i // len(patches)) % 4)).save(path)
        rows.append({"image": str(path), "text": rec["caption"], "slide_id": rec["wsi_id"]})
    (root / "d.json").write_text(json.dumps(rows))
    items, problems = load_descriptions(root / "d.json")
    build_agent_data(items, root / "sets", AgentDataConfig(image_size=32, validation_fraction=0.0), problems)
    return root / "sets"


def plain_trl(sets: Path, out: Path, args: argparse.Namespace) -> float:
    """The baseline: TRL by hand on the same data, model, LoRA and SFTConfig (pathgen only builds
    the base model and the config object, outside the timed loop)."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from trl import SFTTrainer

    from pathgen.agents.training import sft
    from pathgen.agents.training.config import AgentTrainConfig
    from pathgen.agents.training.train import load_base

    cuda = torch.cuda.is_available()
    model, processor = load_base(args.base, sets, "revise", 0, cuda)
    ds = load_dataset("parquet", data_files=str(sets / "revise" / "hf" / "train.parquet"), split="train")
    ds = ds.select_columns(["images", "prompt", "completion"])
    eos = processor.tokenizer.eos_token
    ds = ds.map(lambda r: {"completion": [{**m, "content": m["content"] + eos} for m in r["completion"]]})
    cfg = AgentTrainConfig(
        max_steps=args.steps, batch_size=args.batch_size, lr=1e-4, lora=True, save_steps=10**6
    )
    trainer = SFTTrainer(
        model=model,
        args=sft.sft_config(out, cfg, cuda, False, args.base != "tiny"),
        train_dataset=ds,
        processing_class=processor,
        peft_config=LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    start = time.perf_counter()
    trainer.train()
    return args.steps * args.batch_size / (time.perf_counter() - start)


def pathgen_run(sets: Path, out: Path, args: argparse.Namespace) -> float:
    from pathgen.agents.training.config import AgentTrainConfig
    from pathgen.agents.training.train import train_agent

    cfg = AgentTrainConfig(
        max_steps=args.steps, batch_size=args.batch_size, lr=1e-4, lora=True, save_steps=10**6
    )
    summary = train_agent("revise", args.base, sets, out, cfg, echo=lambda _: None)
    return args.steps * args.batch_size / summary["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--descriptions", type=int, default=64)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", type=Path, default=Path("agents_sft_throughput.json"))
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = build_sets(root, args.descriptions)
        runs: list[dict[str, Any]] = []
        for i in range(args.repeat):  # alternate, so a machine's load drift hits both
            trl_sps = plain_trl(sets, root / f"trl{i}", args)
            pg_sps = pathgen_run(sets, root / f"pg{i}", args)
            runs.append(
                {"trl_samples_per_s": trl_sps, "pathgen_samples_per_s": pg_sps, "ratio": pg_sps / trl_sps}
            )
    ratio = statistics.median(r["ratio"] for r in runs)
    print(f"{'run':>4} {'TRL samples/s':>14} {'pathgen samples/s':>18} {'ratio':>6}")
    for i, r in enumerate(runs):
        print(
            f"{i:>4} {r['trl_samples_per_s']:>14.2f} {r['pathgen_samples_per_s']:>18.2f} {r['ratio']:>6.3f}"
        )
    print(f"median ratio pathgen / TRL: {ratio:.3f} (goal >= 0.95)")
    result = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "base": args.base,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "runs": runs,
        "median_ratio": ratio,
    }
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
