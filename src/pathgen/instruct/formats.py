"""Accepted items as files: LLaVA conversation JSON, a Hugging Face dataset, PathMMU MCQ JSON, a card.

Formats follow the published ones so existing trainers and evaluators read them unchanged:

- ``llava.json``: PathGen-Instruct items ``{id, image, conversations, type (OPEN|CLOSE), wsi_id,
  file_id, position}``; a CLOSE item ends "Answer with the option's letter from the given choices
  directly." and its answer is the letter (``mcq_answer`` can make it the option or its text);
- ``hf/``: the same items as a ``datasets`` folder with the image embedded (``load_from_disk``);
- ``mcq.json``: PathMMU's layout ``data[subset][split] = [{No, img, question, options ["A) ..."],
  answer "A) ...", explanation}]``; the held-out ``test`` split is never in the training JSON.

Letters: the correct option's position is assigned here, not by the LLM (which favours A and B),
balanced per option count in item-id order with seeded tie-breaks, so every letter is as common
as uniform and the result does not depend on the order in which calls finished.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathgen.instruct.templates import rng_for
from pathgen.rundir import atomic_write, write_json

LETTERS = "ABCDEFGHIJ"
CLOSE_SUFFIX = "Answer with the option's letter from the given choices directly."


def place_answers(items: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Each MCQ with ``options`` reordered and ``letter`` set: the answer goes to the least used
    letter among items with the same option count (seeded ties), the distractors shuffled around it."""
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    out = []
    for item in sorted(items, key=lambda i: i["id"]):
        options = list(item["options"])
        k = len(options)
        rng = rng_for("letters", seed, item["id"])
        used = counts[k]
        low = min(used[L] for L in LETTERS[:k])
        slot = rng.choice([i for i, L in enumerate(LETTERS[:k]) if used[L] == low])
        used[LETTERS[slot]] += 1
        answer = next(o for o in options if _same(o, item["answer"]))
        rest = [o for o in options if o is not answer]
        rng.shuffle(rest)
        rest.insert(slot, answer)
        out.append({**item, "options": rest, "letter": LETTERS[slot]})
    return out


def _same(a: str, b: str) -> bool:
    from pathgen.instruct.checks import norm

    return norm(a) == norm(b)


def option_lines(options: Sequence[str]) -> list[str]:
    return [f"{LETTERS[i]}) {o}" for i, o in enumerate(options)]


def mcq_prompt(question: str, options: Sequence[str]) -> str:
    return "\n".join([question.strip(), *option_lines(options), CLOSE_SUFFIX])


def mcq_target(item: dict[str, Any], style: str) -> str:
    """What a CLOSE item trains the assistant to answer: the letter, the option, or its text."""
    answer = item["options"][LETTERS.index(item["letter"])]
    return {"letter": item["letter"], "option": f"{item['letter']}) {answer}", "text": answer}[style]


def _base(item: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "id": f"{item['id']}-{kind}",
        "image": item["image"],
        "wsi_id": item["wsi_id"],
        "file_id": item.get("file_id") or "",
        "position": [str(item["x"]), str(item["y"])],
    }


def llava_close(item: dict[str, Any], style: str = "letter") -> dict[str, Any]:
    return {
        **_base(item, "close"),
        "type": "CLOSE",
        "conversations": [
            {"from": "human", "value": "<image>\n" + mcq_prompt(item["question"], item["options"])},
            {"from": "gpt", "value": mcq_target(item, style)},
        ],
    }


def llava_open(item: dict[str, Any]) -> dict[str, Any]:
    conv = []
    for i, turn in enumerate(item["turns"]):
        q = turn["question"].strip()
        conv.append({"from": "human", "value": f"<image>\n{q}" if i == 0 else q})
        conv.append({"from": "gpt", "value": turn["answer"].strip()})
    return {**_base(item, "open"), "type": "OPEN", "conversations": conv}


def pathmmu(items: Sequence[dict[str, Any]], split_of: dict[str, str]) -> dict[str, Any]:
    """``data[subset][split]``: subset = the pair's project (organ) or ``pathgen``."""
    data: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for item in items:
        subset = item.get("project") or "pathgen"
        split = split_of[item["id"]]
        rows = data.setdefault(subset, {}).setdefault(split, [])
        answer = item["options"][LETTERS.index(item["letter"])]
        rows.append(
            {
                "No": f"{item['id']}",
                "img": item["image"],
                "question": item["question"],
                "options": option_lines(item["options"]),
                "answer": f"{item['letter']}) {answer}",
                "explanation": item.get("explanation", ""),
            }
        )
    return data


def write_hf(rows: list[dict[str, Any]], images: Path, out: Path) -> Path:
    """The LLaVA items as a ``datasets`` folder, images embedded (``datasets.load_from_disk``)."""
    import datasets

    from pathgen.rundir import replacing_dir

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
            "type": datasets.Value("string"),
            "wsi_id": datasets.Value("string"),
            "file_id": datasets.Value("string"),
            "position": [datasets.Value("string")],
        }
    )
    records = [{**r, "image": str(images / r["image"])} for r in rows]
    ds = datasets.Dataset.from_list(records, features=features)
    with replacing_dir(out) as tmp:
        ds.save_to_disk(str(tmp))
    return out


def letter_balance(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per letter: count, count expected under uniform placement, their ratio; and the worst ratio."""
    counts: Counter[str] = Counter(i["letter"] for i in items)
    expected: Counter[str] = Counter()
    for i in items:
        for L in LETTERS[: len(i["options"])]:
            expected[L] += 1 / len(i["options"])
    letters = {
        L: {"count": counts[L], "expected": round(expected[L], 2), "ratio": round(counts[L] / expected[L], 3)}
        for L in sorted(expected)
    }
    worst = max((v["ratio"] for v in letters.values()), default=0.0)
    return {"n": len(items), "letters": letters, "max_ratio": worst}


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 2),
        "min": min(values),
        "max": max(values),
    }


def _words(text: str) -> int:
    return len(str(text).split())


def question_type(question: str) -> str:
    """The question's opening word (what / which / how / ...), PathMMU-style question typing."""
    words = question.strip().lower().split()
    return words[0].strip("?,:") if words else "empty"


def card(
    conversations: list[dict[str, Any]],
    mcqs: list[dict[str, Any]],
    rejections: list[dict[str, Any]],
    split_of: dict[str, str],
    meta: dict[str, Any],
) -> dict[str, Any]:
    return {
        **meta,
        "counts": {
            "conversations": len(conversations),
            "mcq": len(mcqs),
            "mcq_train": sum(1 for m in mcqs if split_of[m["id"]] == "train"),
            "mcq_test": sum(1 for m in mcqs if split_of[m["id"]] == "test"),
            "rejected": len(rejections),
            "rejected_by_reason": dict(
                Counter(f"{r['kind']}:{str(r['reason']).split(':', 1)[0]}" for r in rejections)
            ),
            "offline_demo": sum(1 for i in [*conversations, *mcqs] if "offline_demo" in i.get("flags", [])),
        },
        "question_types": dict(
            Counter(question_type(m["question"]) for m in mcqs)
            + Counter(question_type(t["question"]) for c in conversations for t in c["turns"])
        ),
        "letter_balance": letter_balance(mcqs),
        "lengths": {
            "turns": _stats([len(c["turns"]) for c in conversations]),
            "options": _stats([len(m["options"]) for m in mcqs]),
            "question_words": _stats(
                [_words(m["question"]) for m in mcqs]
                + [_words(t["question"]) for c in conversations for t in c["turns"]]
            ),
            "answer_words": _stats([_words(t["answer"]) for c in conversations for t in c["turns"]]),
            "option_words": _stats([_words(o) for m in mcqs for o in m["options"]]),
        },
    }


def card_markdown(info: dict[str, Any]) -> str:
    c, bal = info["counts"], info["letter_balance"]
    lines = [
        "# Instruction data card",
        "",
        f"Source: `{info.get('source', '')}`; model: `{info.get('model', '')}`.",
        "",
        f"- conversations (OPEN): {c['conversations']}",
        f"- closed questions (CLOSE): {c['mcq']} ({c['mcq_train']} train, {c['mcq_test']} held-out test)",
        f"- rejected: {c['rejected']}" + (f" ({c['rejected_by_reason']})" if c["rejected"] else ""),
        f"- offline demo (template) items: {c['offline_demo']}",
        "",
        f"## Answer letters (max ratio to uniform: {bal['max_ratio']})",
        "",
        "| letter | count | expected | ratio |",
        "|---|---|---|---|",
        *[f"| {L} | {v['count']} | {v['expected']} | {v['ratio']} |" for L, v in bal["letters"].items()],
        "",
        "## Question types",
        "",
        *[f"- {k}: {v}" for k, v in sorted(info["question_types"].items(), key=lambda kv: -kv[1])],
        "",
        "## Lengths",
        "",
        *[f"- {k}: {v}" for k, v in info["lengths"].items()],
        "",
    ]
    return "\n".join(lines)


def write_outputs(
    out: Path,
    conversations: list[dict[str, Any]],
    mcqs: list[dict[str, Any]],
    rejections: list[dict[str, Any]],
    split_of: dict[str, str],
    meta: dict[str, Any],
    answer_style: str = "letter",
    hf: bool = True,
    pairs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Every output file; returns the card. ``mcqs`` already carry their letters (place_answers).

    ``pairs.json`` lists the training pairs' ``{id, image, caption}``: the assistant's stage 1
    (projector alignment on image-caption pairs) reads it."""
    train_close = [llava_close(m, answer_style) for m in mcqs if split_of[m["id"]] == "train"]
    train_open = [llava_open(c) for c in conversations if split_of[c["id"]] == "train"]
    rows = sorted([*train_open, *train_close], key=lambda r: r["id"])
    write_json(out / "llava.json", rows)
    write_json(out / "mcq.json", pathmmu(mcqs, split_of))
    write_json(out / "rejections.json", rejections)
    write_json(
        out / "pairs.json",
        [
            {"id": p["id"], "image": p["image"], "caption": p["caption"]}
            for p in pairs
            if split_of[p["id"]] == "train"
        ],
    )
    if hf and rows:
        write_hf(rows, out / "images", out / "hf")
    info = card(conversations, mcqs, rejections, split_of, meta)
    write_json(out / "card.json", info)
    atomic_write(out / "README.md", card_markdown(info))
    return info
