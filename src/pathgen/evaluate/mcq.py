"""Multiple-choice evaluation of a VLM (``pathgen eval --task mcq``) on PathMMU-style MCQ JSON.

The benchmark is PathMMU's layout, ``data[subset][split] = [{No, img, question, options ["A) ..."],
answer "A) ...", explanation}]`` (what ``pathgen instruct`` writes as ``mcq.json``). Each question is
asked with its image as ``question / options / "Answer with the option's letter ..."``; the answer
is parsed MMMU-style (PathMMU uses MMMU's parser): a bracketed letter ``(B)``, then a letter on its
own (``B``, ``B)``, ``B.``), then, for free text, the option whose text the answer contains (the last
mentioned when several are); no match falls back to a seeded random letter, counted as such.
Unlike MMMU, option text is matched in short answers too: a model that answers "adipose tissue"
has answered. Accuracy is item-weighted overall ("overall" in PathMMU) and reported per subset.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pathgen.rundir import atomic_write

LETTERS = "ABCDEFGHIJ"
CLOSE_SUFFIX = "Answer with the option's letter from the given choices directly."
_OPTION = re.compile(r"^\s*\(?([A-J])[).:]\s*(.*)$", re.S)


def split_option(option: str, index: int) -> tuple[str, str]:
    """``"B) fat"`` -> ``("B", "fat")``; an option without a letter gets its position's letter."""
    m = _OPTION.match(option)
    return (m.group(1), m.group(2).strip()) if m else (LETTERS[index], option.strip())


def parse_answer(response: str, options: dict[str, str], rng: random.Random) -> tuple[str, bool]:
    """``(letter, fell_back)``: the option a free-text answer chose, MMMU-style (see the module)."""
    text = " " + response.strip().strip(",.!?;:'\"") + " "
    letters = list(options)
    found = [L for L in letters if f"({L})" in text]
    if not found:
        found = [L for L in letters if re.search(rf"\s{L}(?:[).:]|\s)", text)]
    if not found:
        low = text.lower()
        found = [L for L, ans in options.items() if ans and ans.lower() in low]
        # "smooth muscle" also contains "muscle": prefer options not inside another found option
        found = [
            L for L in found if not any(L != M and options[L].lower() in options[M].lower() for M in found)
        ]
    if not found:
        return rng.choice(letters), True
    if len(found) == 1:
        return found[0], False
    low = text.lower()

    def last(L: str) -> int:
        return max(text.rfind(f"({L})"), text.rfind(f" {L} "), low.rfind(options[L].lower()))

    return max(found, key=last), False


def load_mcq(source: str | Path, split: str | None = None) -> tuple[list[dict[str, Any]], Path]:
    """Items ``{id, subset, split, image, question, options {letter: text}, answer}`` of a PathMMU-style
    file (or a folder holding ``mcq.json`` / ``data.json``); ``split`` None = ``test`` where present."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = next((path / n for n in ("mcq.json", "data.json") if (path / n).is_file()), path / "mcq.json")
    if not path.is_file():
        raise FileNotFoundError(
            f"no MCQ benchmark at {source}: give a PathMMU-style JSON file (or a folder with mcq.json)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected PathMMU's layout data[subset][split] = [items]")
    has_test = any("test" in splits for splits in data.values())
    want = split or ("test" if has_test else None)
    items = []
    for subset, splits in data.items():
        for name, rows in splits.items():
            if want is not None and name != want:
                continue
            for i, row in enumerate(rows):
                opts = dict(split_option(o, j) for j, o in enumerate(row["options"]))
                answer = split_option(row["answer"], 0)[0] if _OPTION.match(row["answer"]) else None
                if answer is None:  # an answer given as the option's text
                    answer = next((L for L, t in opts.items() if t.strip() == row["answer"].strip()), None)
                if answer not in opts:
                    raise ValueError(
                        f"{path}: item {row.get('No', i)} of {subset}/{name}: answer not in options"
                    )
                items.append(
                    {
                        "id": str(row.get("No", f"{subset}-{name}-{i}")),
                        "subset": subset,
                        "split": name,
                        "image": _image_path(path.parent, row["img"]),
                        "question": row["question"],
                        "options": opts,
                        "answer": answer,
                    }
                )
    if not items:
        raise ValueError(f"{path}: no items" + (f" in split {want!r}" if want else ""))
    return items, path


def _image_path(root: Path, img: str) -> Path:
    for candidate in (root / img, root / "images" / img):
        if candidate.is_file():
            return candidate
    return root / img


def prompt_of(item: dict[str, Any]) -> str:
    lines = [item["question"].strip(), *[f"{L}) {t}" for L, t in item["options"].items()], CLOSE_SUFFIX]
    return "\n".join(lines)


def evaluate_mcq(
    model: str,
    benchmark: str | Path,
    out: Path,
    *,
    name: str | None = None,
    base_url: str | list[str] | None = None,
    api_key_env: str | None = None,
    split: str | None = None,
    seed: int = 0,
    max_tokens: int = 32,
    concurrency: int = 8,
    device: str | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask every item, parse, score; writes ``results.json``/``results.md`` and ``predictions.jsonl``."""
    from pathgen.evaluate.report import write_results
    from pathgen.models.generators import load_generator

    items, path = load_mcq(benchmark, split)
    items = items[:limit] if limit else items
    generator = load_generator(model, base_url=base_url, api_key_env=api_key_env, device=device)
    answers = asyncio.run(_ask_all(generator, items, seed, max_tokens, concurrency, progress))
    rng = random.Random(seed)
    preds = []
    for item, (text, error) in zip(items, answers, strict=True):
        letter, fell_back = parse_answer(text or "", item["options"], rng)
        preds.append(
            {"id": item["id"], "subset": item["subset"], "answer": item["answer"], "pred": letter,
             "fallback": fell_back, "response": text, "error": error, "correct": letter == item["answer"]}
        )  # fmt: skip
    result = {
        "benchmark": name or str(benchmark),
        "model": model,
        "data": str(path),
        "n_examples": len(items),
        "tasks": {"mcq": score(preds, items)},
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in preds))
    write_results(out, result)
    return result


def score(preds: list[dict[str, Any]], items: list[dict[str, Any]]) -> dict[str, Any]:
    by_subset: dict[str, list[bool]] = defaultdict(list)
    for p in preds:
        by_subset[p["subset"]].append(p["correct"])
    n = len(preds)
    return {
        "accuracy": sum(p["correct"] for p in preds) / n if n else 0.0,
        "n": n,
        "chance": sum(1 / len(i["options"]) for i in items) / n if n else 0.0,
        "fallback": sum(p["fallback"] for p in preds),
        "errors": sum(1 for p in preds if p["error"]),
        "subsets": {s: {"accuracy": sum(v) / len(v), "n": len(v)} for s, v in sorted(by_subset.items())},
        "predicted_letters": dict(sorted(Counter(p["pred"] for p in preds).items())),
    }


async def _ask_all(
    generator: Any,
    items: list[dict[str, Any]],
    seed: int,
    max_tokens: int,
    concurrency: int,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[str, str | None]]:
    from PIL import Image

    from pathgen.engine.caller import Caller, Stats
    from pathgen.engine.retry import RetryPolicy
    from pathgen.models.generators import GenerationError, GenerationParams, ImagePart

    caller = Caller(concurrency, RetryPolicy(3, 0.5, 10.0, timeout_s=120.0), Stats(total=len(items)))
    params = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=seed)
    done = 0

    async def one(item: dict[str, Any]) -> tuple[str, str | None]:
        nonlocal done
        try:
            image = ImagePart(Image.open(item["image"]).convert("RGB"))
            messages = [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt_of(item)}],
                }
            ]
            result, _ = await caller.call(generator, messages, params, f"mcq-{item['id']}")
            return result.text, None
        except (
            GenerationError,
            OSError,
        ) as exc:  # one bad item is a wrong answer with its error, not a crash
            return "", f"{type(exc).__name__}: {exc}"[:500]
        finally:
            done += 1
            if progress:
                progress(done, len(items))

    try:
        return list(await asyncio.gather(*(one(i) for i in items)))
    finally:
        await generator.aclose()
