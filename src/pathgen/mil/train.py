"""Training and evaluating slide models: one slide per step, early stopping on validation.

ACMIL's recipe: AdamW (weight decay 1e-5), batch of one slide, cosine schedule to 0 over the
epochs, the best epoch by validation (macro AUC, ties and AUC-less validation sets broken by the
lower validation loss) restored at the end; training stops after ``patience`` epochs without a
better one. Slides stream from disk (:func:`pathgen.mil.bags.iter_bags`) so memory is one slide.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.config import MilConfig
from pathgen.mil.bags import Bag, BagPlan, iter_bags
from pathgen.mil.metrics import slide_metrics, summarise
from pathgen.mil.protocol import Split, make_splits
from pathgen.rundir import atomic_path, write_json

MODEL_FILE = "model.json"


def model_params(cfg: MilConfig) -> dict[str, Any]:
    params: dict[str, Any] = {
        "d_inner": cfg.d_inner,
        "d_attn": cfg.d_attn,
        "dropout": cfg.dropout,
        "standardize": cfg.standardize,
    }
    if cfg.model == "acmil":
        params |= {"n_token": cfg.n_token, "n_masked_patch": cfg.n_masked_patch, "mask_drop": cfg.mask_drop}
    return params


def predict(
    model: Any, bags: list[Bag], device: str, attention: bool = False
) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """(probabilities n x C, mean loss, attention per slide when asked) in eval mode."""
    import torch

    from pathgen.mil.models import mil_loss

    model.eval()
    probs, losses, attn = [], [], []
    with torch.no_grad():
        for bag, feats in iter_bags(bags):
            out = model(torch.from_numpy(feats).to(device))
            losses.append(float(mil_loss(out, torch.tensor(bag.label, device=device))))
            probs.append(torch.softmax(out.logits, -1).cpu().numpy())
            if attention:
                attn.append(
                    out.attention.cpu().numpy()
                    if out.attention is not None
                    else np.full(len(feats), 1.0 / len(feats))
                )
    return np.stack(probs) if probs else np.zeros((0, 0)), float(np.mean(losses)) if losses else 0.0, attn


def _val_score(bags: list[Bag], probs: np.ndarray, loss: float) -> tuple[float, float]:
    from pathgen.mil.metrics import macro_auc

    auc = macro_auc([b.label for b in bags], probs) if len(bags) else None
    return (auc if auc is not None else -1.0, -loss)


def feature_stats(bags: list[Bag]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std over every tile of ``bags``, one slide in memory at a time."""
    total = sq = None
    n = 0
    for _, feats in iter_bags(bags):
        f = feats.astype(np.float64)
        total = f.sum(0) if total is None else total + f.sum(0)
        sq = (f * f).sum(0) if sq is None else sq + (f * f).sum(0)
        n += len(f)
    if total is None or sq is None or n == 0:
        raise ValueError("no training tiles to standardise with")
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0))
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def train_run(
    plan: BagPlan, split: Split, cfg: MilConfig, device: str, tick: Callable[[str], None] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Train one model on ``split``; returns it (best validation epoch restored) and its history."""
    import torch

    from pathgen.mil.models import build_model, mil_loss

    torch.manual_seed(split.seed)
    rng = np.random.default_rng(split.seed)
    model = build_model(cfg.model, plan.dim, len(plan.classes), **model_params(cfg)).to(device)
    train = [plan.bags[i] for i in split.train]
    if cfg.standardize:
        mean, std = feature_stats(train)
        model.mean.copy_(torch.from_numpy(mean))
        model.std.copy_(torch.from_numpy(std))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=0.0)
    val = [plan.bags[i] for i in split.val]
    monitor = val if val else train  # no validation patients: the training loss decides
    best, best_state, best_epoch, wait = None, None, 0, 0
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        total = 0.0
        for bag, feats in iter_bags(train, rng.permutation(len(train))):
            out = model(torch.from_numpy(feats).to(device))
            loss = mil_loss(out, torch.tensor(bag.label, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        sched.step()
        probs, vloss, _ = predict(model, monitor, device)
        score = _val_score(monitor, probs, vloss) if val else (-1.0, -vloss)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(1, len(train)),
                "val_loss": vloss,
                "val_auc": score[0] if score[0] >= 0 else None,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        if tick:
            tick(f"{split.name} epoch {epoch + 1}: loss {history[-1]['train_loss']:.3f}, val {vloss:.3f}")
        if best is None or score > best:
            best, best_state, best_epoch, wait = score, copy.deepcopy(model.state_dict()), epoch + 1, 0
        else:
            wait += 1
            if wait >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, {"best_epoch": best_epoch, "epochs_run": len(history), "history": history}


def _device(cfg: MilConfig) -> str:
    import torch

    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")


def train_mil(
    plan: BagPlan,
    cfg: MilConfig,
    out: Path,
    benchmark: str,
    tick: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every run of the protocol: train, test, save the weights; results in ``out`` (JSON + md)."""
    from safetensors.torch import save_file

    from pathgen.mil.report import write_mil_results

    device = _device(cfg)
    splits, protocol = make_splits(plan.bags, cfg.seeds, cfg.folds, cfg.val_fraction)
    out.mkdir(parents=True, exist_ok=True)
    runs, predictions = [], []
    for split in splits:
        model, hist = train_run(plan, split, cfg, device, tick)
        test = [plan.bags[i] for i in split.test]
        probs, _, _ = predict(model, test, device)
        metrics = slide_metrics([b.label for b in test], probs, plan.classes)
        ckpt = out / "checkpoints" / f"{split.name}.safetensors"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(ckpt) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
        runs.append(
            {
                "run": split.name,
                "seed": split.seed,
                "fold": split.fold,
                "n_train": len(split.train),
                "n_val": len(split.val),
                "n_test": len(test),
                **{k: metrics[k] for k in ("macro_auc", "balanced_accuracy", "weighted_f1", "accuracy")},
                "confusion_matrix": metrics["confusion_matrix"],
                "notes": split.notes,
                **hist,
                "checkpoint": str(ckpt.relative_to(out)),
                "test_slides": [b.slide_id for b in test],
            }
        )
        predictions += [
            {
                "run": split.name,
                "slide_id": b.slide_id,
                "label": plan.classes[b.label],
                "pred": plan.classes[int(p.argmax())],
                **{f"p_{c}": float(v) for c, v in zip(plan.classes, p, strict=True)},
            }
            for b, p in zip(test, probs, strict=True)
        ]
    write_json(
        out / MODEL_FILE,
        {
            "model": cfg.model,
            "params": model_params(cfg),
            "d_feat": plan.dim,
            "classes": plan.classes,
            "encoder": plan.encoder,
            "config": json.loads(cfg.model_dump_json()),
            "checkpoints": [r["checkpoint"] for r in runs],
        },
    )
    result = _result(plan, benchmark, cfg.model, protocol, runs, "train")
    write_mil_results(out, result, predictions)
    return result


def _result(
    plan: BagPlan, benchmark: str, kind: str, protocol: str, runs: list[dict[str, Any]], how: str
) -> dict[str, Any]:
    entry = {**summarise(runs), "protocol": protocol, "n_runs": len(runs), "runs": runs}
    return {
        "benchmark": benchmark,
        "model": plan.encoder or "(unknown encoder)",
        "kind": "mil",
        "stage": how,
        "classes": plan.classes,
        "n_examples": len(plan.bags),
        "n_slides": len(plan.bags),
        "problems": plan.problems,
        "tasks": {f"mil-{kind}": entry},
    }


def load_trained(model_dir: Path, device: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The model description and every saved run's model, ready to predict."""
    from safetensors.torch import load_file

    from pathgen.mil.models import build_model

    desc_file = Path(model_dir) / MODEL_FILE
    if not desc_file.is_file():
        raise FileNotFoundError(
            f"no {MODEL_FILE} in {model_dir}; train first with `pathgen mil train --out {model_dir}`"
        )
    desc = json.loads(desc_file.read_text(encoding="utf-8"))
    models = []
    for rel in desc["checkpoints"]:
        m = build_model(desc["model"], desc["d_feat"], len(desc["classes"]), **desc["params"])
        m.load_state_dict(load_file(str(Path(model_dir) / rel)))
        models.append((Path(rel).stem, m.to(device).eval()))
    return desc, models


def _round_robin(labels: list[int]) -> list[int]:
    """Slide positions taking each class in turn, so a few heatmaps show every class."""
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    return [q[r] for r in range(max(map(len, queues), default=0)) for q in queues if r < len(q)]


def eval_mil(
    plan: BagPlan,
    model_dir: Path,
    out: Path,
    benchmark: str,
    device: str | None = None,
    heatmaps: int = 8,
    top_k: int = 8,
) -> dict[str, Any]:
    """Every trained run on the slides of ``plan``: metrics (mean ± std over runs) and heatmaps of
    the first run's attention for up to ``heatmaps`` slides."""
    import torch

    from pathgen.mil.heatmap import write_heatmap
    from pathgen.mil.report import write_mil_results

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    desc, models = load_trained(model_dir, device)
    if desc["classes"] != plan.classes:
        raise ValueError(
            f"the model was trained on classes {desc['classes']}, these labels have {plan.classes}"
        )
    if desc["d_feat"] != plan.dim:
        raise ValueError(f"the model takes {desc['d_feat']}-d features, these files hold {plan.dim}-d")
    if desc.get("encoder") and plan.encoder and desc["encoder"] != plan.encoder:
        plan.problems.append(
            {
                "slide_id": "(all)",
                "problem": f"features from {plan.encoder}, model trained on {desc['encoder']}",
            }
        )
    runs, predictions, heat = [], [], []
    for i, (name, model) in enumerate(models):
        probs, _, attn = predict(model, plan.bags, device, attention=i == 0)
        metrics = slide_metrics([b.label for b in plan.bags], probs, plan.classes)
        runs.append(
            {
                "run": name,
                "n_test": len(plan.bags),
                **{k: metrics[k] for k in ("macro_auc", "balanced_accuracy", "weighted_f1", "accuracy")},
                "confusion_matrix": metrics["confusion_matrix"],
            }
        )
        predictions += [
            {
                "run": name,
                "slide_id": b.slide_id,
                "label": plan.classes[b.label],
                "pred": plan.classes[int(p.argmax())],
                **{f"p_{c}": float(v) for c, v in zip(plan.classes, p, strict=True)},
            }
            for b, p in zip(plan.bags, probs, strict=True)
        ]
        if i == 0 and desc["model"] != "meanpool":
            for k in _round_robin([b.label for b in plan.bags])[:heatmaps]:
                bag, a, p = plan.bags[k], attn[k], probs[k]
                pred = plan.classes[int(p.argmax())]
                title = f"{bag.slide_id}: true {plan.classes[bag.label]}, predicted {pred} ({p.max():.2f})"
                try:
                    heat.append(
                        str(
                            write_heatmap(bag.path, a, out / "heatmaps" / f"{bag.slide_id}.png", title, top_k)
                        )
                    )
                except Exception as exc:  # one slide's picture failing is a row, not the end
                    plan.problems.append(
                        {"slide_id": bag.slide_id, "problem": f"heatmap: {type(exc).__name__}: {exc}"[:300]}
                    )
    result = _result(plan, benchmark, desc["model"], f"trained runs of {model_dir}", runs, "eval")
    result["heatmaps"] = heat
    write_mil_results(out, result, predictions)
    return result
