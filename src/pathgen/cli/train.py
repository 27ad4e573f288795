"""Commands of the `train` stage (placeholder until the stage lands)."""

from __future__ import annotations
