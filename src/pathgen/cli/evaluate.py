"""Commands of the `evaluate` stage (placeholder until the stage lands)."""

from __future__ import annotations
