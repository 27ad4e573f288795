"""`pathgen plan`: what a run of N slides will cost, before anything is spent.

A short calibration on this machine (the packaged sample slide, the configured encoder's
architecture with random weights at reduced depth, the caption stage's own dry run) gives a cost
per item; assumptions (slide size, re-ask rate, GPU and VLM throughput), each written out, turn the
per-item costs into CPU-hours, GPU-hours, VLM calls and tokens for N slides. Nothing here loads a
configured checkpoint or calls a configured server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Assumptions", "make_plan"]


def __getattr__(name: str) -> Any:
    """Imported on first use: the CLI reads ``Assumptions`` for its help text, and ``pathgen --help``
    must not pay for the projection code (pydantic, the config, the stages) to show it."""
    if name == "Assumptions":
        from pathgen.planning.assumptions import Assumptions

        return Assumptions
    if name == "make_plan":
        from pathgen.planning.project import make_plan

        return make_plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
