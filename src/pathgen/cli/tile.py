"""Commands of the `tile` stage (placeholder until the stage lands)."""

from __future__ import annotations
