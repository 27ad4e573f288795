"""The Typer application object, shared by the per-stage command modules."""

from __future__ import annotations

import typer

PIPELINE = "Pipeline (in order)"
DATA = "Datasets"
MODELS = "Models"

app = typer.Typer(
    name="pathgen",
    help=(
        "Whole-slide images -> pathology image-caption dataset -> PathGen-CLIP.\n\n"
        "Stages, in order: tile -> embed -> select -> caption -> export; `run` does them all from a "
        "config, `demo` does them all on the bundled sample slides with tiny offline models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
