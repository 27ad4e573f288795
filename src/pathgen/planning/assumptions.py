"""The planner's assumptions, in one place: each default with the reason it was chosen.

Everything a plan projects from that was not measured on this machine comes from here, and every
field is printed with the plan, so a reader can disagree with a number and re-run with their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Why each default is what it is; printed next to the value.
WHY: dict[str, str] = {
    "slide_width": "level-0 px of a typical TCGA diagnostic slide (40x, ~20 x 15 mm of glass)",
    "slide_height": "level-0 px of a typical TCGA diagnostic slide",
    "slide_mpp": "µm/px at level 0 of that slide (40x); converts tile.mpp to level-0 px",
    "thumbnail_level_downsample": "the pyramid level that serves the tissue thumbnail (SVS levels 1/4/16)",
    "tissue_share": "share of grid cells kept as tissue tiles; None = measured on the calibration slide",
    "reask_rate": "share of agent calls whose output check fails once and is asked again",
    "reask_cost": "a re-ask costs this many first calls of the same agent (prompt + failed answer)",
    "gpu_tflops": "effective fp16 TFLOP/s of one GPU on the encoder (an A100 at ~1/3 of its peak)",
    "vlm_tokens_per_s": "prompt + completion tokens per GPU-second of a 7B LLaVA-class model on vLLM "
    "(~64 requests in flight); measure yours",
    "client_cpu_s_per_call": "caption client CPU per model call besides reading/encoding the image "
    "(benchmarks/captioning.py goal: <= 1 ms)",
    "select_tiles_cap": "selection is timed on at most this many random embeddings, then scaled linearly",
}


DEFAULT_VLM_TOKENS_PER_S = 5_000.0


@dataclass
class Assumptions:
    """What a plan assumes; ``None`` where the value is measured or read from a benchmark JSON."""

    slide_width: int = 80_000
    slide_height: int = 60_000
    slide_mpp: float = 0.25
    thumbnail_level_downsample: float = 16.0
    tissue_share: float | None = None
    reask_rate: float = 0.05
    reask_cost: float = 1.0
    gpu_tflops: float = 100.0
    vlm_tokens_per_s: float | None = None  # None: a benchmark JSON's, else DEFAULT_VLM_TOKENS_PER_S
    client_cpu_s_per_call: float = 0.001
    select_tiles_cap: int = 4_000

    def __post_init__(self) -> None:
        positive = ("slide_width", "slide_height", "slide_mpp", "thumbnail_level_downsample")
        positive += ("gpu_tflops", "vlm_tokens_per_s", "select_tiles_cap")
        for name in positive:
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.tissue_share is not None and not 0 < self.tissue_share <= 1:
            raise ValueError(f"tissue_share must be in (0, 1], got {self.tissue_share}")
        if not 0 <= self.reask_rate <= 10:
            raise ValueError(f"reask_rate must be in [0, 10], got {self.reask_rate}")
        for name in ("reask_cost", "client_cpu_s_per_call"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def why(name: str) -> str:
        return WHY.get(name, "")


def parse_size(text: str) -> tuple[int, int]:
    """``"80000x60000"`` -> (80000, 60000); a clear error for anything else."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ValueError(  # noqa: B904 (the parse error adds nothing)
            f"slide size must look like WIDTHxHEIGHT in level-0 px (e.g. 80000x60000), got {text!r}"
        )
    if w <= 0 or h <= 0:
        raise ValueError(f"slide size must be positive, got {text!r}")
    return w, h
