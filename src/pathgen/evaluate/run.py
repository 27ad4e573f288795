"""One evaluation: a model on a benchmark (or on pairs shards), for one or more tasks.

``evaluate()`` is what ``pathgen eval`` calls; it returns the result dict it also writes to
``OUT/results.json`` and ``OUT/results.md`` (plus confusion-matrix PNGs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.evaluate.benchmarks import Benchmark, get_benchmark
from pathgen.evaluate.data import Example, class_counts, split_of
from pathgen.evaluate.features import image_features
from pathgen.evaluate.metrics import (
    classification_metrics,
    image_retrieval_metrics,
    retrieval_metrics,
    text_classifier,
    zero_shot_predict,
)
from pathgen.evaluate.probe import (
    FEW_SHOT_KS,
    MIN_FEW_SHOT_DRAWS,
    check_protocol,
    few_shot,
    linear_probe,
)
from pathgen.evaluate.protocols import DEFAULT_PRESET, PRESETS, check_preset, zeroshot_images
from pathgen.evaluate.report import confusion_png, write_results

TASKS = ("zeroshot", "linear", "fewshot", "retrieval")
PAIRS = "pairs"


def _encoder_factory(spec: str, device: str | None) -> Callable[[], Any]:
    cache: dict[str, Any] = {}

    def get() -> Any:
        if "enc" not in cache:
            from pathgen.models import load_encoder

            cache["enc"] = load_encoder(spec, device=device)
        return cache["enc"]

    return get


def _train_test(examples: list[Example], seed: int) -> tuple[list[Example], list[Example], str]:
    """The dataset's own train/test split, or a stratified half/half split when it has none."""
    train, test = split_of(examples, "train"), split_of(examples, "test")
    if any(e.split for e in examples) and train and test and train != test:
        return train, test, "published"
    from sklearn.model_selection import train_test_split

    labels = [e.label for e in examples]
    counts = class_counts(examples)
    strat = labels if min(counts.values()) >= 2 else None
    tr, te = train_test_split(examples, test_size=0.5, random_state=seed, stratify=strat)
    found = sorted({e.split for e in examples if e.split})
    why = (
        f"the data holds only the {', '.join(found)} split(s)" if found else "dataset has no train/test split"
    )
    return list(tr), list(te), f"stratified 50/50 ({why})"


def _cap(examples: list[Example], per_class: int | None, seed: int) -> list[Example]:
    if not per_class:
        return examples
    rng = np.random.default_rng(seed)
    out = []
    for label in sorted({e.label for e in examples}):
        group = [e for e in examples if e.label == label]
        keep = sorted(rng.choice(len(group), size=min(per_class, len(group)), replace=False))
        out.extend(group[i] for i in keep)
    return out


def evaluate(
    model: str,
    benchmark: str | None,
    data: str | Path,
    out: str | Path,
    tasks: Sequence[str] = ("zeroshot",),
    ensemble: bool = False,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    seeds: Sequence[int] = tuple(range(MIN_FEW_SHOT_DRAWS)),
    shots: Sequence[int] = FEW_SHOT_KS,
    max_per_class: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    preset: str = DEFAULT_PRESET,
    probe: str = "sweep",
) -> dict[str, Any]:
    """Run ``tasks`` and write results under ``out``; unknown tasks, benchmarks, presets or probe
    protocols, and few-shot with fewer than ``MIN_FEW_SHOT_DRAWS`` seeds, fail before work.

    ``preset`` picks the images zero-shot scores (:mod:`pathgen.evaluate.protocols`); ``probe`` the
    linear-probe / few-shot protocol (:mod:`pathgen.evaluate.probe`). Both are recorded per task.
    """
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    check_preset(preset)
    check_protocol(probe)
    if "fewshot" in tasks and len(set(seeds)) < MIN_FEW_SHOT_DRAWS:
        raise ValueError(
            f"few-shot needs at least {MIN_FEW_SHOT_DRAWS} draws per k (distinct --seeds), got "
            f"{len(set(seeds))}: fewer make its mean ± std meaningless"
        )
    out = Path(out)
    bench = None if benchmark in (None, PAIRS) else get_benchmark(benchmark)
    if bench is None and list(tasks) != ["retrieval"]:
        raise ValueError("pairs shards support only --task retrieval; name a --benchmark for classification")
    identity = _identity(model, bench, data, max_per_class)
    previous = previous_result(out, identity)  # refuse a mismatched --out before any encoding
    cache = Path(cache_dir) if cache_dir else out / "cache"
    get_encoder = _encoder_factory(model, device)
    started = time.time()
    if bench is None:
        result = _pairs_retrieval(model, data, get_encoder, cache, batch_size, progress)
    else:
        result = _benchmark_tasks(
            model,
            bench,
            data,
            out,
            tasks,
            ensemble,
            get_encoder,
            cache,
            batch_size,
            seeds,
            shots,
            max_per_class,
            progress,
            preset,
            probe,
        )
    result |= identity
    result["elapsed_s"] = round(time.time() - started, 2)
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = merge_previous(result, previous)
    write_results(out, result)
    return result


def _identity(model: str, bench: Benchmark | None, data: str | Path, max_per_class: int | None) -> dict:
    """What makes two runs' task results belong in one results.json: same model, same benchmark,
    same images (data folder and --max-per-class subsample)."""
    path = Path(data).expanduser()
    return {
        "model": model,
        "benchmark": bench.name if bench else PAIRS,
        "data": str(path.resolve()) if path.exists() else str(data),
        "max_per_class": max_per_class if bench else None,
    }


def previous_result(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The results.json already in ``out`` when it is for the same run identity, else a clear error.

    One --out folder holds one model on one benchmark: `pathgen eval compare` reads one model label
    per folder, and the confusion PNGs are named by task only. So a different model, benchmark,
    data folder or subsample is refused rather than mixed in or silently overwritten.
    """
    file = out / "results.json"
    if not file.exists():
        return None
    try:
        prev = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{file} exists but cannot be read ({exc}); delete it or choose another --out"
        ) from exc
    # results written before max_per_class was recorded cannot be checked on it
    checked = {k: v for k, v in identity.items() if k in prev or k != "max_per_class"}
    diffs = [
        f"{key} {prev.get(key)!r} there, {value!r} now"
        for key, value in checked.items()
        if _normalise(key, prev.get(key)) != value
    ]
    if diffs:
        raise ValueError(
            f"{out} already holds results of another evaluation ({'; '.join(diffs)}). One --out folder "
            f"holds one model on one benchmark and data set: choose another --out, or delete {file} "
            "to start over."
        )
    return prev


def _normalise(key: str, value: Any) -> Any:
    """Earlier results.json files may hold the data folder as typed (relative): resolve it alike."""
    if key == "data" and value is not None and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def merge_previous(result: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Keep the earlier run's tasks that this run did not redo, and say which (``kept_tasks``, with
    the time each task was run in ``task_created``), so a rerun of one task loses nothing."""
    created = {t: result["created"] for t in result["tasks"]}
    kept: dict[str, Any] = {}
    if previous:
        earlier = previous.get("task_created", {})
        for task, entry in previous.get("tasks", {}).items():
            if task not in result["tasks"]:
                kept[task] = entry
                created[task] = earlier.get(task, previous.get("created", "unknown"))
    result["tasks"] = {**kept, **result["tasks"]}
    result["kept_tasks"] = sorted(kept)
    result["task_created"] = created
    return result


def _benchmark_tasks(
    model: str,
    bench: Benchmark,
    data: str | Path,
    out: Path,
    tasks: Sequence[str],
    ensemble: bool,
    get_encoder: Callable[[], Any],
    cache: Path,
    batch_size: int,
    seeds: Sequence[int],
    shots: Sequence[int],
    max_per_class: int | None,
    progress: Callable[[int, int], None] | None,
    preset: str = DEFAULT_PRESET,
    probe: str = "sweep",
) -> dict[str, Any]:
    examples = _cap(bench.load(data), max_per_class, seed=0)
    index = {c: i for i, c in enumerate(bench.classes)}
    names = bench.class_names()
    feats, cached = image_features(examples, get_encoder, model, bench.name, cache, batch_size, progress)
    row = {e.id: i for i, e in enumerate(examples)}
    result: dict[str, Any] = {
        "benchmark": bench.name,
        "title": bench.title,
        "model": model,
        "data": str(data),
        "n_examples": len(examples),
        "class_counts": class_counts(examples),
        "features_cached": cached,
        "tasks": {},
    }

    def xy(subset: list[Example]) -> tuple[np.ndarray, np.ndarray]:
        return feats[[row[e.id] for e in subset]], np.asarray([index[e.label] for e in subset])

    if "zeroshot" in tasks and bench.task == "retrieval":
        raise ValueError(f"{bench.name} has no class prompts (a retrieval benchmark); use --task retrieval")
    for task in tasks:
        if task == "zeroshot":
            chosen = zeroshot_images(bench, examples, preset)
            x, y = xy(chosen.examples)
            prompts = bench.prompts(ensemble)
            classifier = text_classifier(prompts, get_encoder().encode_texts)
            _, pred = zero_shot_predict(x, classifier)
            metrics = classification_metrics(y, pred, names, bench.ordinal)
            metrics["preset"] = preset
            metrics["preset_means"] = PRESETS[preset]
            metrics["images"] = chosen.split
            if chosen.note:
                metrics["note"] = chosen.note
            metrics["prompts"] = "ensemble" if ensemble else "single"
            metrics["n_prompts"] = sum(len(p) for p in prompts)
            metrics["example_prompt"] = prompts[0][0]
            result["tasks"]["zeroshot"] = metrics
            confusion_png(
                metrics["confusion_matrix"],
                names,
                f"{bench.name} zero-shot — {model}",
                out / "confusion_zeroshot.png",
            )
        elif task in ("linear", "fewshot"):
            train, test, how = _train_test(examples, seed=seeds[0] if seeds else 0)
            (xtr, ytr), (xte, yte) = xy(train), xy(test)
            if task == "linear":
                metrics = linear_probe(
                    xtr,
                    ytr,
                    xte,
                    yte,
                    names,
                    seed=seeds[0] if seeds else 0,
                    protocol=probe,
                    ordinal=bench.ordinal,
                )
                confusion_png(
                    metrics["confusion_matrix"],
                    names,
                    f"{bench.name} linear probe — {model}",
                    out / "confusion_linear.png",
                )
            else:
                metrics = few_shot(
                    xtr, ytr, xte, yte, names, ks=shots, seeds=seeds, protocol=probe, ordinal=bench.ordinal
                )
            metrics["split"] = how
            metrics["n_train"], metrics["n_test"] = len(train), len(test)
            result["tasks"][task] = metrics
        elif task == "retrieval":
            if bench.task != "retrieval":
                raise ValueError(
                    f"{bench.name} is a classification benchmark; retrieval runs on kimia24 or on pairs "
                    "shards (--benchmark pairs --data SHARDS)"
                )
            _, y = xy(examples)
            result["tasks"]["retrieval"] = image_retrieval_metrics(feats, y)
    return result


def _pairs_retrieval(
    model: str,
    data: str | Path,
    get_encoder: Callable[[], Any],
    cache: Path,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    from pathgen.evaluate.pairs import load_pairs

    pairs = load_pairs(data)
    if not pairs:
        raise ValueError(f"no image–caption pairs in {data}")
    examples = [_PairExample(p) for p in pairs]
    from pathgen.evaluate.pairs import expand_shards
    from pathgen.rundir import file_identity, fingerprint

    name = f"pairs-{fingerprint([file_identity(u) for u in expand_shards(data)])[:12]}"
    feats, cached = image_features(examples, get_encoder, model, name, cache, batch_size, progress)
    texts = get_encoder().encode_texts([p.caption for p in pairs])
    return {
        "benchmark": PAIRS,
        "model": model,
        "data": str(data),
        "n_examples": len(pairs),
        "features_cached": cached,
        "tasks": {"retrieval": retrieval_metrics(feats, texts)},
    }


class _PairExample:
    """Adapter so pairs go through the same feature cache as benchmark examples."""

    def __init__(self, pair: Any):
        self.pair = pair
        self.id = pair.key
        self.path = pair.key
        self.index = None

    def open(self) -> Any:
        return self.pair.open()
