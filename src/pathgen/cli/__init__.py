"""The `pathgen` command: one module per stage, each a thin layer over library functions.

Importing a command module registers its commands on :data:`app`, in the order of the
pipeline, which is the order `pathgen --help` lists them. Command modules import heavy
libraries (torch, open_clip, transformers) inside the command bodies so that `--help` is instant.
"""

from __future__ import annotations

from pathgen.cli.app import app
from pathgen.cli import tile, embed, select, caption, export, pipeline, ingest, train, evaluate  # noqa: E402,F401,I001  (registration order = help order)

__all__ = ["app", "main"]


def main() -> None:
    app()
