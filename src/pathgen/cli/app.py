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
    "tile", "embed", "select", "caption", "export", "plan", "run", "demo", "ingest", "video", "train", "eval",
    "features", "mil", "agents", "instruct", "assistant",
    "audit", "review",
)  # fmt: skip


class FilledGroup(TyperGroup):
    """A command group whose commands show the config defaults in their help text.

    Every group (the top level and each sub-app such as `mil`, `agents`, `assistant`) uses it, so
    no command's help can show an unfilled ``<<section.field>>`` marker."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """The command about to run or show its help, with the config defaults in its help text
        (see :mod:`pathgen.cli.defaults`; listing the commands does not need them)."""
        from pathgen.cli.defaults import fill_command

        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            fill_command(command)
        return name, command, rest


class PipelineOrderGroup(FilledGroup):
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
