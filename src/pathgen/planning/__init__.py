"""`pathgen plan`: what a run of N slides will cost, before anything is spent.

A short calibration on this machine (the packaged sample slide, the configured encoder's
architecture with random weights at reduced depth, the caption stage's own dry run) gives a cost
per item; assumptions (slide size, re-ask rate, GPU and VLM throughput), each written out, turn the
per-item costs into CPU-hours, GPU-hours, VLM calls and tokens for N slides. Nothing here loads a
configured checkpoint or calls a configured server.
"""

from __future__ import annotations

from pathgen.planning.assumptions import Assumptions
from pathgen.planning.project import make_plan

__all__ = ["Assumptions", "make_plan"]
