"""Commands of the `pipeline` stage (placeholder until the stage lands)."""

from __future__ import annotations
