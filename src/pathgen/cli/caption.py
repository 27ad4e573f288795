"""Commands of the `caption` stage (placeholder until the stage lands)."""

from __future__ import annotations
