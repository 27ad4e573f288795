"""Writing one agent's records in the three formats trainers read, per split.

- ``llava_<split>.json``: LLaVA conversation JSON (``id``, ``image``, ``conversations`` with
  ``human``/``gpt`` turns, the image as ``<image>`` in the first human turn), plus ``system``,
  ``slide_id`` and ``meta``: what LLaVA-style trainers and PathGen's own code read;
- ``hf/<split>.parquet``: a Hugging Face dataset (``datasets`` Image feature, so the image bytes are
  inside the file) in TRL's conversational prompt-completion form: ``images``, ``prompt``,
  ``completion``; ``datasets.load_dataset("parquet", ...)`` and ``SFTTrainer`` read it as is;
- ``chat_<split>.jsonl``: OpenAI-style chat messages with an image part (relative path) and the
  assistant answer, plus ``meta``: what ``pathgen agents eval`` and most fine-tuning services read.

Writers get a folder that :func:`pathgen.rundir.replacing_dir` swaps in at the end, so ``--out``
never holds a half-written set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pathgen.rundir import atomic_path, atomic_write, write_json

FORMATS = ("llava", "hf", "chat")


def _system_and_user(record: dict[str, Any]) -> tuple[str, str]:
    system = next(m["content"] for m in record["messages"] if m["role"] == "system")
    user = next(m["content"] for m in record["messages"] if m["role"] == "user")
    return system, user


def llava_item(record: dict[str, Any]) -> dict[str, Any]:
    system, user = _system_and_user(record)
    human = f"<image>\n{user}" if record["image"] else user
    item = {
        "id": record["id"],
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": record["target"]}],
        "system": system,
        "slide_id": record["slide_id"],
        "meta": record["meta"],
    }
    if record["image"]:
        item["image"] = record["image"]
    return item


def chat_item(record: dict[str, Any]) -> dict[str, Any]:
    system, user = _system_and_user(record)
    content: Any = user
    if record["image"]:
        content = [{"type": "image", "image": record["image"]}, {"type": "text", "text": user}]
    return {
        "id": record["id"],
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": content},
            {"role": "assistant", "content": record["target"]},
        ],
        "images": [record["image"]] if record["image"] else [],
        "slide_id": record["slide_id"],
        "split": record["split"],
        "meta": record["meta"],
    }


HF_CHUNK = 512  # records per Arrow batch: memory holds one batch of image bytes, not the whole set


def write_hf(records: list[dict[str, Any]], root: Path, path: Path) -> None:
    """A parquet file with the image bytes inside (``datasets`` Image feature), written batch by
    batch so a set of many thousand patches never sits in memory at once."""
    import pyarrow.parquet as pq
    from datasets import Dataset, Features, Image, List, Value
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar per small file is noise; the command reports counts

    message = {"role": Value("string"), "content": Value("string")}
    features = Features(
        {
            "id": Value("string"),
            "slide_id": Value("string"),
            "images": List(Image()),
            "prompt": List(message),
            "completion": List(message),
            "meta": Value("string"),
        }
    )

    def table(chunk: list[dict[str, Any]]) -> Any:
        rows = {
            "id": [r["id"] for r in chunk],
            "slide_id": [r["slide_id"] for r in chunk],
            "images": [
                [{"bytes": (root / r["image"]).read_bytes(), "path": r["image"]}] if r["image"] else []
                for r in chunk
            ],
            "prompt": [[{"role": m["role"], "content": m["content"]} for m in r["messages"]] for r in chunk],
            "completion": [[{"role": "assistant", "content": r["target"]}] for r in chunk],
            "meta": [json.dumps(r["meta"], sort_keys=True) for r in chunk],
        }
        # The schema carries the features (Image), so `datasets` decodes the bytes as images.
        return Dataset.from_dict(rows, features=features).data.table

    with atomic_path(path) as tmp:
        first = table(records[:HF_CHUNK])
        with pq.ParquetWriter(tmp, first.schema) as writer:
            if first.num_rows:  # an empty row group is unreadable for `datasets`; no group is fine
                writer.write_table(first)
            for i in range(HF_CHUNK, len(records), HF_CHUNK):
                writer.write_table(table(records[i : i + HF_CHUNK]))


def write_agent_set(records: list[dict[str, Any]], root: Path, agent: str) -> dict[str, int]:
    """All formats of one agent's records under ``root/agent``; returns samples per split."""
    folder = root / agent
    (folder / "hf").mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "validation"):
        part = [r for r in records if r["split"] == split]
        counts[split] = len(part)
        write_json(folder / f"llava_{split}.json", [llava_item(r) for r in part])
        lines = "".join(json.dumps(chat_item(r), sort_keys=True) + "\n" for r in part)
        atomic_write(folder / f"chat_{split}.jsonl", lines)
        write_hf(part, root, folder / "hf" / f"{split}.parquet")
    return counts


def read_chat(path: Path) -> list[dict[str, Any]]:
    """The records of a ``chat_<split>.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
