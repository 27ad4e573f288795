"""`pathgen agents eval`: an agent model on the held-out split of its set, scored per agent.

- revise: valid-JSON rate; per error kind (addition / deletion / modification) detection precision
  and recall (an edit of the type that undoes the injected error: delete / add / modify) and the
  share *located* (that edit's text overlaps the injected text, word F1 >= 0.5); fix rate (the
  revised text equals the clean text, words compared); false edits on clean inputs;
- describe: ROUGE-L against the teacher text, embedding similarity with any encoder spec, and
  hallucinated report findings (vocabulary terms of the slide's report findings that the model
  states but the reference does not);
- summarize: fit rate to the CLIP context and information kept (vocabulary terms of the
  description that survive in the caption).

Answers are asked exactly as the chain asks (the set's prompt turns plus the image), through the
engine's :class:`~pathgen.engine.caller.Caller` (retries), at temperature 0. Writes
``results.json``, ``results.md`` and ``predictions.jsonl`` into ``--out``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pathgen.agents.fit import count_tokens
from pathgen.agents.revise import REVISION_SCHEMA, parse_revision
from pathgen.agents.training.config import AgentEvalConfig
from pathgen.agents.training.corrupt import KINDS, UNDO_TYPE
from pathgen.agents.training.formats import read_chat
from pathgen.agents.training.metrics import normalized, overlap_f1, rouge_l, terms
from pathgen.rundir import atomic_write, write_json

LOCATED_F1 = 0.5


def _messages(record: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    from PIL import Image

    from pathgen.models.generators import ImagePart

    messages = []
    for m in record["messages"]:
        if m["role"] == "assistant":
            continue
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "image":
                    with Image.open(root / p["image"]) as img:
                        parts.append({"type": "image", "image": ImagePart(img.convert("RGB"))})
                else:
                    parts.append({"type": "text", "text": p["text"]})
            content = parts
        messages.append({"role": m["role"], "content": content})
    return messages


async def _answers(
    generator: Any, records: list[dict[str, Any]], root: Path, agent: str, cfg: AgentEvalConfig
) -> list[dict[str, Any]]:
    from pathgen.engine.caller import Caller, Stats
    from pathgen.engine.retry import RetryPolicy
    from pathgen.models.generators import GenerationError, GenerationParams

    params = GenerationParams(
        temperature=0.0, top_p=1.0, max_tokens=cfg.max_tokens, seed=0,
        json_schema=REVISION_SCHEMA if agent == "revise" else None,
    )  # fmt: skip
    caller = Caller(cfg.concurrency, RetryPolicy(), Stats(total=len(records)))

    async def one(rec: dict[str, Any]) -> dict[str, Any]:
        try:
            result, _ = await caller.call(generator, _messages(rec, root), params, rec["id"])
        except GenerationError as exc:
            return {"text": "", "finish_reason": "error", "error": str(exc)[:500]}
        return {"text": result.text, "finish_reason": result.finish_reason, "error": None}

    try:
        return list(await asyncio.gather(*(one(r) for r in records)))
    finally:
        await generator.aclose()


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def score_revise(
    records: list[dict[str, Any]], answers: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = []
    for rec, ans in zip(records, answers, strict=True):
        meta = rec["meta"]
        try:
            rev = parse_revision(ans["text"])
            edits, revised, valid = [e.model_dump() for e in rev.edits], rev.revised, True
        except ValueError:
            edits, revised, valid = [], "", False
        truth = meta["edits"][0] if meta["edits"] else None
        want = truth["type"] if truth else None
        found = bool(want) and any(e["type"] == want for e in edits)
        located = False
        if truth:
            field = "after" if want == "add" else "before"
            located = any(
                e["type"] == want
                and overlap_f1(e[field] or e["after"] or e["before"], truth[field]) >= LOCATED_F1
                for e in edits
            )
        rows.append({
            "id": rec["id"], "kind": meta["kind"], "valid_json": valid, "finish_reason": ans["finish_reason"],
            "predicted_types": sorted({e["type"] for e in edits}), "detected": found, "located": located,
            "fixed": valid and normalized(revised) == normalized(meta["clean"]),
            "revised_rouge_l": rouge_l(revised, meta["clean"]) if valid else 0.0, "answer": ans["text"],
        })  # fmt: skip
    n = len(rows)
    corrupted = [r for r in rows if r["kind"] != "clean"]
    clean = [r for r in rows if r["kind"] == "clean"]
    per_kind = {}
    for kind in KINDS:
        t = UNDO_TYPE[kind]
        of_kind = [r for r in rows if r["kind"] == kind]
        flagged = [r for r in rows if t in r["predicted_types"]]
        per_kind[kind] = {
            "n": len(of_kind),
            "edit_type": t,
            "precision": _rate(sum(r["kind"] == kind for r in flagged), len(flagged)),
            "recall": _rate(sum(r["detected"] for r in of_kind), len(of_kind)),
            "located": _rate(sum(r["located"] for r in of_kind), len(of_kind)),
        }
    metrics = {
        "n": n,
        "valid_json_rate": _rate(sum(r["valid_json"] for r in rows), n),
        "cut_off_rate": _rate(sum(r["finish_reason"] == "length" for r in rows), n),
        "detection_recall": _rate(sum(r["detected"] for r in corrupted), len(corrupted)),
        "located_recall": _rate(sum(r["located"] for r in corrupted), len(corrupted)),
        "fix_rate": _rate(sum(r["fixed"] for r in corrupted), len(corrupted)),
        "false_edit_rate": _rate(sum(bool(r["predicted_types"]) for r in clean), len(clean)),
        "clean_kept_rate": _rate(sum(r["fixed"] for r in clean), len(clean)),
        "revised_rouge_l": _rate(sum(r["revised_rouge_l"] for r in rows), n),
        "per_kind": per_kind,
    }
    return metrics, rows


def score_describe(
    records: list[dict[str, Any]], answers: list[dict[str, Any]], encoder: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = []
    for rec, ans in zip(records, answers, strict=True):
        ref, pred = rec["meta"]["reference"], ans["text"]
        report = terms("; ".join(rec["meta"].get("findings") or []))
        hallucinated = sorted((terms(pred) & report) - terms(ref))
        rows.append({
            "id": rec["id"], "rouge_l": rouge_l(pred, ref), "hallucinated_findings": hallucinated,
            "finish_reason": ans["finish_reason"], "answer": pred,
        })  # fmt: skip
    n = len(rows)
    metrics: dict[str, Any] = {
        "n": n,
        "rouge_l": _rate(sum(r["rouge_l"] for r in rows), n),
        "hallucination_rate": _rate(sum(bool(r["hallucinated_findings"]) for r in rows), n),
        "with_report_findings": sum(bool(rec["meta"].get("findings")) for rec in records),
        "embedding_similarity": None,
        "encoder": encoder,
    }
    if encoder and rows:
        from pathgen.models import load_encoder

        enc = load_encoder(encoder)
        a = enc.encode_texts([r["answer"] or " " for r in rows])
        b = enc.encode_texts([rec["meta"]["reference"] for rec in records])
        sims = (a * b).sum(axis=1)
        for r, s in zip(rows, sims, strict=True):
            r["embedding_similarity"] = float(s)
        metrics["embedding_similarity"] = round(float(sims.mean()), 4)
    return metrics, rows


def score_summarize(
    records: list[dict[str, Any]], answers: list[dict[str, Any]], context_length: int = 77
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = []
    for rec, ans in zip(records, answers, strict=True):
        desc, pred = rec["meta"]["description"], " ".join(ans["text"].split())
        want = terms(desc)
        rows.append({
            "id": rec["id"], "tokens": count_tokens(pred),
            "fits": bool(pred) and count_tokens(pred) <= context_length,
            "kept": (len(terms(pred) & want) / len(want)) if want else None, "answer": pred,
        })  # fmt: skip
    n = len(rows)
    kept = [r["kept"] for r in rows if r["kept"] is not None]
    return {
        "n": n,
        "fit_rate": _rate(sum(r["fits"] for r in rows), n),
        "information_kept": _rate(sum(kept), len(kept)),
        "context_length": context_length,
    }, rows


def evaluate_agent(
    agent: str,
    model: str,
    data: str | Path,
    out: str | Path | None = None,
    cfg: AgentEvalConfig | None = None,
    *,
    base_url: str | list[str] | None = None,
    api_key_env: str | None = None,
    encoder: str | None = None,
    generator: Any = None,
) -> dict[str, Any]:
    """Score ``model`` (a generator spec, or ``generator`` itself) as ``agent`` on the held-out split."""
    cfg = cfg or AgentEvalConfig()
    data = Path(data)
    path = data / agent / f"chat_{cfg.split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the sets with `pathgen agents data`")
    records = read_chat(path)[: cfg.limit]
    if not records:
        raise ValueError(f"{path} has no samples (a run with one slide has no held-out split)")
    if generator is None:
        from pathgen.models.generators import load_generator

        generator = load_generator(model, base_url=base_url, api_key_env=api_key_env)
    answers = asyncio.run(_answers(generator, records, data, agent, cfg))
    scorers: dict[str, Callable[..., tuple[dict[str, Any], list[dict[str, Any]]]]] = {
        "revise": score_revise,
        "describe": lambda r, a: score_describe(r, a, encoder),
        "summarize": score_summarize,
    }
    metrics, rows = scorers[agent](records, answers)
    result = {
        "agent": agent,
        "model": model,
        "data": str(data.resolve()),
        "split": cfg.split,
        "metrics": metrics,
    }
    if out is not None:
        out = Path(out)
        write_json(out / "results.json", result)
        atomic_write(out / "results.md", markdown(result))
        atomic_write(out / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The table people paste: one row per metric, then the per-kind table for revise."""
    m = result["metrics"]
    lines = [
        f"# {result['agent']} agent: `{result['model']}` on {result['split']} ({m['n']} samples)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, value in m.items():
        if key in ("per_kind", "n") or isinstance(value, dict):
            continue
        lines.append(f"| {key} | {_fmt(value)} |")
    if "per_kind" in m:
        lines += ["", "| error kind | n | edit | precision | recall | located |", "|---|---|---|---|---|---|"]
        for kind, k in m["per_kind"].items():
            lines.append(
                f"| {kind} | {k['n']} | {k['edit_type']} | {_fmt(k['precision'])} | {_fmt(k['recall'])} "
                f"| {_fmt(k['located'])} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
