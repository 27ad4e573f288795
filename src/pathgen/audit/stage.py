"""The audit stage: every exportable pair of a run measured and flagged, into ``RUN/audit/``.

Writes ``flags.parquet`` (one row per pair: its measures, its flags, where its image came from,
or the error that stopped it being measured), ``summary.json`` (counts, thresholds, the shortcut
analysis) and ``report.html`` (plots and example strips). Pairs are measured in batches as items of
an executor (threads: pixel work in OpenCV and the encoder release the GIL); a batch whose images
cannot be read becomes error rows and the audit goes on. The stage is fingerprinted on the pairs,
the export it read images from and the config: a re-run with nothing changed says so and does
nothing. Flag names are :data:`FLAGS`; ``pathgen export --drop-flag`` reads them back through
:func:`pathgen.audit.flags.flagged_tiles`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.audit.caption_quality import near_duplicates, refusal_hits, unseen_findings
from pathgen.audit.flags import FLAGS
from pathgen.audit.images import PairImages, decode, export_image_settings
from pathgen.audit.patch_quality import PATCH_METRICS, patch_metrics
from pathgen.audit.shortcuts import parse_barcode, site_leakage, site_terms
from pathgen.config import AuditConfig, dump_section
from pathgen.executors import Executor
from pathgen.executors.base import Resources
from pathgen.executors.local import LocalExecutor
from pathgen.rundir import RunDir, file_identity, fingerprint, write_json, write_parquet

STAGE = "audit"
AUDIT_SCHEMA = 1


def audit_dir(run: RunDir) -> Path:
    return run.root / "audit"


def resolve_encoder(run: RunDir, cfg: AuditConfig) -> str:
    """The alignment encoder: the configured one, else the run's embed encoder, else ``tiny``."""
    if cfg.encoder:
        return cfg.encoder
    if run.config.exists():
        from pathgen.config import RunConfig

        try:
            return RunConfig.from_yaml(run.config).embed.encoder
        except (ValueError, FileNotFoundError):
            pass
    return "tiny"


def _pairs(run: RunDir) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from pathgen.agents.results import load_caption_records
    from pathgen.export.records import exportable, slide_rows, sort_records

    run.require(run.slides, "tile")
    run.require(run.journal, "caption")
    slides = slide_rows(run.slides)
    pairs = [
        dict(r)
        for r in sort_records(load_caption_records(run))
        if exportable(r) is None and str(r["slide_id"]) in slides
    ]
    return pairs, slides


def _measure_batch(
    batch: Sequence[Mapping[str, Any]],
    *,
    images: PairImages,
    slides: Mapping[str, Mapping[str, Any]],
    encoder: Any,
    cfg: AuditConfig,
    probe: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Pixels measures, image and caption embeddings of a batch; a failed read is that pair's error."""
    rows: list[dict[str, Any]] = []
    pil = []
    for record in batch:
        row: dict[str, Any] = {"tile_id": str(record["tile_id"]), "error": None, "source": None}
        try:
            jpeg, source = images.get(record, slides.get(str(record["slide_id"])))
            if jpeg is None:
                raise FileNotFoundError("no image in the export and no slide to read it from")
            image = decode(jpeg)
            row.update(patch_metrics(np.asarray(image), cfg.analysis_size), source=source)
            pil.append(image)
        except Exception as exc:  # one unreadable patch is a row, the audit goes on
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    ok = [r for r in rows if r["error"] is None]
    if ok:
        feats = encoder.encode_images(pil, batch_size=cfg.batch_size)
        texts = encoder.encode_texts(
            [str(b["caption"]) for b, r in zip(batch, rows, strict=True) if r["error"] is None]
        )
        for row, f, t in zip(ok, feats, texts, strict=True):
            row["alignment"] = float(np.dot(f, t))
            if row["tile_id"] in probe:  # kept only for the site probe's sample (memory)
                row["_feature"] = f.astype(np.float16)
    return rows


def _caption_rows(
    pairs: Sequence[Mapping[str, Any]], slides: Mapping[str, Mapping[str, Any]], cfg: AuditConfig
) -> list[dict[str, Any]]:
    from pathgen.agents.fit import count_tokens
    from pathgen.agents.inputs import report_findings

    findings: dict[str, list[str]] = {}
    rows = []
    for record in pairs:
        sid = str(record["slide_id"])
        if sid not in findings:
            findings[sid] = report_findings((slides.get(sid) or {}).get("report"))
        caption = str(record.get("caption") or "")
        slide = slides.get(sid) or {}
        barcode = parse_barcode(sid) or parse_barcode(str(slide.get("file_id") or ""))
        rows.append(
            {
                "n_words": len(caption.split()),
                "n_tokens": count_tokens(caption),
                "refusal": refusal_hits(caption, cfg.refusal_phrases),
                "unseen_findings": unseen_findings(
                    caption, str(record.get("description") or ""), findings[sid]
                ),
                "project": (str(slide.get("project") or "").strip() or None),
                "site": barcode.site if barcode else None,
                "patient": barcode.patient if barcode else None,
            }
        )
    return rows


def _flags(row: Mapping[str, Any], cfg: AuditConfig) -> list[str]:
    out = []
    if row.get("error") is None:
        checks = {
            "blur": row["laplacian_var"] < cfg.blur_max_laplacian_var,
            "pen": row["pen_fraction"] > cfg.pen_max_fraction,
            "background": row["background_fraction"] > cfg.background_max_fraction,
            "fold": row["dark_fraction"] > cfg.fold_max_dark_fraction,
            "jpeg": row["blockiness"] > cfg.jpeg_max_blockiness,
        }
        out += [name for name, hit in checks.items() if hit]
    checks = {
        "misaligned": bool(row.get("_lowest")),
        "near_duplicate": bool(row.get("duplicate_of")),
        "short": row["n_words"] < cfg.min_words,
        "long": row["n_tokens"] > cfg.max_tokens,
        "refusal": bool(row["refusal"]),
        "report_leak": bool(row["unseen_findings"]),
    }
    out += [name for name, hit in checks.items() if hit]
    return out


def _probe_sample(
    pairs: Sequence[Mapping[str, Any]], slides: Mapping[str, Mapping[str, Any]], cfg: AuditConfig
) -> frozenset[str]:
    """The TCGA pairs whose image features the site probe uses: all, or a seeded random
    ``probe_max_pairs`` of them (features of 10^6 pairs would not fit in memory, nor need to)."""
    sited = [
        str(p["tile_id"])
        for p in pairs
        if parse_barcode(str(p["slide_id"]))
        or parse_barcode(str((slides.get(str(p["slide_id"])) or {}).get("file_id") or ""))
    ]
    if len(sited) > cfg.probe_max_pairs:
        rng = np.random.default_rng(cfg.seed)
        sited = [sited[i] for i in rng.choice(len(sited), cfg.probe_max_pairs, replace=False)]
    return frozenset(sited)


def audit_stage(run: RunDir, cfg: AuditConfig, *, executor: Executor | None = None) -> dict[str, Any]:
    """Write ``RUN/audit/``; returns ``{pairs, flagged, by_flag, failed, up_to_date, leakage, out}``."""
    pairs, slides = _pairs(run)
    if not pairs:
        raise ValueError(f"{run.root}: no captioned pair to audit (run `pathgen caption` first)")
    spec = resolve_encoder(run, cfg)
    index = run.export / "index.parquet"
    fp = fingerprint(
        STAGE, AUDIT_SCHEMA, dump_section(cfg), spec,
        [{k: p.get(k) for k in ("tile_id", "caption", "description", "status")} for p in pairs],
        file_identity(index) if index.exists() else None,
        {s: {k: slides[s].get(k) for k in ("path", "project", "report")} for s in sorted(slides)},
    )  # fmt: skip
    out = audit_dir(run)
    if run.stage_done(STAGE, fp) and (out / "flags.parquet").exists() and (out / "report.html").exists():
        previous = (run.stage_status(STAGE) or {}).get("summary", {})
        return {**previous, "up_to_date": True}
    run.clear_stage(STAGE)

    from functools import partial

    from pathgen.models.encoders import load_encoder

    encoder = load_encoder(spec, device=cfg.device)
    probe = _probe_sample(pairs, slides, cfg)
    size, quality = export_image_settings(run)
    images = PairImages(run, size, quality)
    batches = [pairs[i : i + cfg.batch_size] for i in range(0, len(pairs), cfg.batch_size)]
    measured: list[list[dict[str, Any]] | None] = [None] * len(batches)
    fn = partial(_measure_batch, images=images, slides=slides, encoder=encoder, cfg=cfg, probe=probe)
    runner = executor or LocalExecutor(workers=2)
    for result in runner.map(fn, batches, label="audit: pairs", resources=Resources(mode="thread")):
        if result.ok:
            measured[result.index] = result.value
        else:
            measured[result.index] = [
                {"tile_id": str(p["tile_id"]), "error": result.error, "source": None}
                for p in batches[result.index]
            ]
    rows = [r for batch in measured for r in batch or []]
    for row, record, extra in zip(rows, pairs, _caption_rows(pairs, slides, cfg), strict=True):
        row.update(extra, slide_id=str(record["slide_id"]), x=int(record["x"]), y=int(record["y"]),
                   size=int(record["size"]), caption=str(record["caption"]))  # fmt: skip

    aligned = [r for r in rows if r.get("alignment") is not None]
    n_low = math.ceil(cfg.misaligned_fraction * len(aligned)) if cfg.misaligned_fraction > 0 else 0
    for r in sorted(aligned, key=lambda r: r["alignment"])[:n_low]:
        r["_lowest"] = True
    for i, j, _sim in near_duplicates(
        [r["caption"] for r in rows], cfg.near_duplicate_jaccard, seed=cfg.seed
    ):
        rows[j].setdefault("duplicate_of", rows[i]["tile_id"])  # the first one stays unflagged
    for r in rows:
        r["flags"] = _flags(r, cfg)

    with_site = [r for r in rows if r.get("site") and r.get("_feature") is not None]
    leakage = site_leakage(
        np.stack([r["_feature"] for r in with_site]) if with_site else np.zeros((0, 1)),
        [r["site"] for r in with_site], cfg.probe_folds, cfg.seed, [r["patient"] for r in with_site],
    )  # fmt: skip
    sited = [r for r in rows if r.get("site")]
    terms = site_terms([r["caption"] for r in sited], [r["site"] for r in sited])
    by_flag = Counter(f for r in rows for f in r["flags"])
    from pathgen.models.encoders import has_random_weights

    summary = {
        "pairs": len(rows),
        "flagged": sum(1 for r in rows if r["flags"]),
        "by_flag": {f: by_flag.get(f, 0) for f in FLAGS},
        "failed": sum(1 for r in rows if r["error"]),
        "encoder": spec,
        "encoder_random": has_random_weights(spec),  # then alignment (and its flag) mean nothing
        "leakage": leakage,
        "site_terms": {s: [list(t) for t in v] for s, v in terms.items()},
        "projects": dict(Counter(r["project"] or "(none)" for r in rows).most_common()),
        "sites": dict(Counter(r["site"] or "(not TCGA)" for r in rows).most_common()),
        "slides": len({r["slide_id"] for r in rows}),
        "thresholds": dump_section(cfg),
    }
    _write(out, rows, summary, images, slides, cfg)
    keys = ("pairs", "flagged", "by_flag", "failed", "leakage", "encoder", "encoder_random")
    result = {**{k: summary[k] for k in keys},
              "up_to_date": False, "out": str(out)}  # fmt: skip
    run.mark_stage(STAGE, fp, result)
    return result


COLUMNS = (
    "tile_id", "slide_id", "project", "site", "patient", "x", "y", "size", "source", "error",
    *PATCH_METRICS, "alignment", "n_words", "n_tokens", "refusal", "unseen_findings", "duplicate_of",
    "flags",
)  # fmt: skip


def _table(rows: Sequence[Mapping[str, Any]]) -> Any:
    import pyarrow as pa

    strings = pa.string()
    schema = pa.schema(
        [(c, strings) for c in ("tile_id", "slide_id", "project", "site", "patient")]
        + [(c, pa.int64()) for c in ("x", "y", "size")]
        + [("source", strings), ("error", strings)]
        + [(c, pa.float64()) for c in (*PATCH_METRICS, "alignment")]
        + [("n_words", pa.int32()), ("n_tokens", pa.int32())]
        + [("refusal", pa.list_(strings)), ("unseen_findings", pa.list_(strings)), ("duplicate_of", strings)]
        + [("flags", pa.list_(strings))]
        + [(f"flag_{f}", pa.bool_()) for f in FLAGS]
    )
    data = [{**{c: r.get(c) for c in COLUMNS}, **{f"flag_{f}": f in r["flags"] for f in FLAGS}} for r in rows]
    return pa.Table.from_pylist(data, schema=schema)


def _write(
    out: Path,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    images: PairImages,
    slides: Mapping[str, Mapping[str, Any]],
    cfg: AuditConfig,
) -> None:
    from pathgen.audit.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    write_parquet(_table(rows), out / "flags.parquet")
    write_json(out / "summary.json", summary)
    write_report(out / "report.html", rows, summary, images, slides, cfg)
