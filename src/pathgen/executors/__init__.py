"""How a stage's items are run: one module that every stage hands its per-item function to.

A stage splits its work into *what is done to one item* (a slide for tile, a shard for export, a
batch of tiles for embed, a tile chain for caption) and leaves *how the items are run* to an
:class:`Executor`: ``local`` (inline, threads or processes on this machine) or ``ray`` (tasks on a
Ray cluster, or a local Ray instance). Both give the same results in the same shape, with one
progress display and one failure policy: an item that fails becomes an :class:`ItemResult` with
an ``error`` text and the run goes on. Stages never build pools of their own.
"""

from __future__ import annotations

from pathgen.executors.base import Executor, ItemResult
from pathgen.executors.factory import EXECUTORS, make_executor

__all__ = ["EXECUTORS", "Executor", "ItemResult", "make_executor"]
