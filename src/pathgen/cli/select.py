"""Commands of the `select` stage (placeholder until the stage lands)."""

from __future__ import annotations
