"""Console output shared by the commands: one rich console, summaries as tables, clear exits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pathgen.cli.defaults import marker

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error without a traceback and return the Exit to raise (bad input, bad config).

    The message is redacted: it may quote a server's answer or a URL that carries a key.
    """
    from rich.markup import escape

    from pathgen.redact import redact

    console.print(f"[bold red]error:[/] {escape(redact(message))}")
    return typer.Exit(code)


def interrupted(exc: Exception) -> typer.Exit:
    """Print how an interrupted stage ended (saved work, how to resume); the Exit carries 128 + signal."""
    console.print(f"[bold yellow]{exc}[/]", highlight=False)
    return typer.Exit(getattr(exc, "exit_code", 130))


def summary_table(title: str, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_cell(row.get(col)) for col in columns])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


EXECUTOR_HELP = (
    "how items run: local (this machine) | ray "
    f"\\[default: the config's `executor:`, else {marker('executor', 'kind')}]"
)
RAY_ADDRESS_HELP = "Ray cluster to join (auto, ray://head:10001); none: --executor ray starts a local Ray"


def executor_config(base: Any, executor: str | None, ray_address: str | None) -> Any:
    """The run's executor settings: the config's ``executor:`` with --executor/--ray-address on top.

    ``--ray-address`` alone implies ``--executor ray``. Raises ``ValueError`` for an unknown name.
    """
    from pathgen.config import ExecutorConfig

    section = getattr(base, "executor", None) or ExecutorConfig()
    if ray_address and executor is None:
        executor = "ray"
    return with_options(section, kind=executor, ray_address=ray_address)


def with_options(section: Any, **given: Any) -> Any:
    """A stage's settings: its config-file section with the options typed on the command line on
    top (an option left out keeps the file's value), validated again as a whole."""
    chosen = {k: v for k, v in given.items() if v is not None}
    return type(section).model_validate({**section.model_dump(), **chosen})
