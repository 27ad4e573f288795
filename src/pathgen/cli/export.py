"""Commands of the `export` stage (placeholder until the stage lands)."""

from __future__ import annotations
