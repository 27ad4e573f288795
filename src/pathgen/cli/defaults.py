"""Defaults in help text, read from the config models when a command's help is shown.

Why: a default written by hand in a help string (``[default: 64]``) drifts from the config model
it repeats. A help string holds a marker instead (:func:`config_default`), and the command group
fills the markers of a command from :mod:`pathgen.config` when that command is resolved (its
``--help`` or a run). ``pathgen --help`` only lists commands, so it never fills them and stays
free of pydantic; a command being run imports the config anyway.
"""

from __future__ import annotations

import re
from typing import Any

import click

_MARK = re.compile(r"<<(\w+)\.(\w+)(?:\|([^>]*))?>>")


def marker(section: str, field: str, none: str | None = None) -> str:
    """A placeholder for the default of ``section.field`` (a run config section, e.g. ``caption``);
    ``none`` is the text shown when that default is None (e.g. ``cuda when available``)."""
    return f"<<{section}.{field}{'' if none is None else '|' + none}>>"


def config_default(section: str, field: str, none: str | None = None) -> str:
    """Help text ``[default: VALUE]`` for an option that sets ``section.field`` of the config."""
    return f"\\[default: {marker(section, field, none)}]"


def format_default(value: Any) -> str:
    """How a default reads in help text (the YAML spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fill_defaults(text: str) -> str:
    """``text`` with every marker replaced by the config model's default."""
    if "<<" not in text:
        return text
    from pathgen.config import default_of, section_model

    def value(match: re.Match[str]) -> str:
        section, field, none = match.group(1), match.group(2), match.group(3)
        default = default_of(section_model(section), field)
        return none if default is None and none is not None else format_default(default)

    return _MARK.sub(value, text)


def fill_command(command: click.Command) -> click.Command:
    """Fill the markers in a command's option and argument help, in place; returns the command."""
    for param in command.params:
        text = getattr(param, "help", None)
        if isinstance(text, str):
            param.help = fill_defaults(text)  # type: ignore[attr-defined]
    return command
