"""Commands of the `embed` stage (placeholder until the stage lands)."""

from __future__ import annotations
