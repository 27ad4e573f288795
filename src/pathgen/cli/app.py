"""The Typer application object, shared by the per-stage command modules."""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

PIPELINE = "Pipeline (in order)"
DATA = "Datasets"
MODELS = "Models"

# The order `pathgen --help` lists commands in: the pipeline's, not the alphabet's (nor the order
# in which modules happen to be imported, which a formatter may sort).
COMMAND_ORDER = (
    "tile", "embed", "select", "caption", "export", "plan", "run", "demo", "ingest", "train", "eval",
)  # fmt: skip


class PipelineOrderGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: (rank.get(name, len(rank)), name))


app = typer.Typer(
    name="pathgen",
    cls=PipelineOrderGroup,
    help=(
        "Whole-slide images -> pathology image-caption dataset -> PathGen-CLIP.\n\n"
        "Stages, in order: tile -> embed -> select -> caption -> export; `run` does them all from a "
        "config, `demo` does them all on the bundled sample slides with tiny offline models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
