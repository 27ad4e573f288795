"""The named choices of the select stage, in a module with no imports, so that the CLI can offer
them (``--cluster-pick random|nearest``) without loading pydantic before a command runs.

`pathgen.config.SelectConfig` holds the defaults; docs/selection.md says which rule each name
stands for and where it comes from (paper or the released PathGen-1.6M script).
"""

from __future__ import annotations

from typing import Literal

ClusterCount = Literal["sqrt", "official"]
ClusterPick = Literal["random", "nearest"]
FindingScore = Literal["sum", "max"]
