"""Commands of the `ingest` stage (placeholder until the stage lands)."""

from __future__ import annotations
