"""The `pathgen` command: one module per stage, each a thin layer over library functions.

Importing a command module registers its commands on :data:`app`; `app.COMMAND_ORDER` fixes the
order `pathgen --help` lists them in (the pipeline's). Command modules import heavy
libraries (torch, open_clip, transformers) inside the command bodies so that `--help` is instant.
"""

from __future__ import annotations

from pathgen.cli import (  # noqa: F401  (registers the commands)
    agents,
    assistant,
    audit,
    caption,
    embed,
    evaluate,
    export,
    ingest,
    instruct,
    mil,
    pipeline,
    plan,
    review,
    select,
    tile,
    train,
    video,
)
from pathgen.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
