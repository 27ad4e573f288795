"""Every default a command's --help shows for a config setting is the config model's default.

Help text reads defaults from :mod:`pathgen.config` (``pathgen.cli.defaults``); this parses what
``--help`` prints, so a default written by hand into a help string, or a marker that names the
wrong field, fails here.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.cli.pipeline import DEMO_MODEL
from pathgen.config import CaptionConfig, default_of, section_model

COMMANDS = ["tile", "embed", "select", "caption", "export", "run", "demo", "ingest", "train", "eval"]
# (command, option) -> the config field the option sets (the help's default must be its default)
SETS = {
    ("tile", "--size"): ("tile", "size"),
    ("tile", "--min-tissue"): ("tile", "min_tissue"),
    ("tile", "--reader"): ("tile", "reader"),
    ("tile", "--workers"): ("tile", "workers"),
    ("embed", "--encoder"): ("embed", "encoder"),
    ("embed", "--batch-size"): ("embed", "batch_size"),
    ("embed", "--workers"): ("embed", "workers"),
    ("embed", "--device"): ("embed", "device"),
    ("embed", "--precision"): ("embed", "precision"),
    ("select", "--top-k"): ("select", "top_k_attribute"),
    ("select", "--cap"): ("select", "per_slide_cap"),
    ("select", "--clusters"): ("select", "clusters"),
    ("select", "--cluster-count"): ("select", "cluster_count"),
    ("select", "--cluster-pick"): ("select", "cluster_pick"),
    ("select", "--finding-score"): ("select", "finding_score"),
    ("select", "--dedup"): ("select", "dedup_threshold"),
    ("select", "--seed"): ("select", "seed"),
    ("caption", "--concurrency"): ("caption", "concurrency"),
    ("caption", "--timeout"): ("caption", "timeout_s"),
    ("export", "--image-size"): ("export", "image_size"),
    ("export", "--jpeg-quality"): ("export", "jpeg_quality"),
    ("export", "--samples-per-shard"): ("export", "samples_per_shard"),
    ("export", "--gallery-max-items"): ("export", "gallery_max_items"),
    ("export", "--workers"): ("export", "workers"),
}
# Settings whose config default is None: the help says in words what happens then.
WHEN_NONE = {
    ("embed", "device"): "cuda when available",
    ("embed", "precision"): "fp16 on CUDA, fp32 on CPU",
    ("select", "clusters"): "from --cluster-count",
}
# Defaults that are no config value: where a value comes from when the option is left out.
PROSE = {
    ("run", "--out"): "`out:` of the config",
    ("export", "--config"): "RUN/config.yaml if present",
    ("demo", "--slides"): "the sample slide shipped with pathgen, `pathgen:sample`",
    ("demo", "--model"): f"{DEMO_MODEL}, offline",
    ("ingest", "--name"): "the format",
}
_DEFAULT = re.compile(r"\[default: ([^\]]*)\]")


def _shown_defaults(command: str) -> dict[str, str]:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    shown: dict[str, str] = {}
    option = None
    for line in result.output.splitlines():
        names = re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line)
        if names:
            option = names[0]
        match = _DEFAULT.search(line)
        if match and option:
            shown[option] = match.group(1)
    assert "<<" not in result.output, result.output  # no marker left unfilled
    return shown


def _expected(section: str, field: str) -> str:
    value = default_of(section_model(section), field)
    if value is None:
        return WHEN_NONE[(section, field)]
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_shown_default_is_the_config_default():
    click_app = typer.main.get_command(app)
    executor = f"the config's `executor:`, else {default_of(section_model('executor'), 'kind')}"
    checked = set()
    for command in COMMANDS:
        own = {p.opts[0]: p.default for p in click_app.commands[command].params if p.opts}  # type: ignore[attr-defined]
        for option, text in _shown_defaults(command).items():
            key = (command, option)
            if key in SETS:
                assert text == _expected(*SETS[key]), f"{command} {option}: help says {text!r}"
                checked.add(key)
            elif option == "--executor":
                assert text == executor, f"{command} --executor: help says {text!r}"
            elif key in PROSE:
                assert text == PROSE[key]
            else:  # typer prints the option's own default: no config setting to drift from
                assert own.get(option) is not None, (
                    f"{command} {option} shows [default: {text}] by hand; "
                    "use pathgen.cli.defaults.config_default"
                )
    assert checked == set(SETS)  # every config-backed option still shows its default
    assert default_of(section_model("select"), "top_k_finding") == default_of(
        section_model("select"), "top_k_attribute"
    )  # --top-k sets both


def test_help_follows_a_changed_config_default(monkeypatch):
    monkeypatch.setattr(CaptionConfig.model_fields["concurrency"], "default", 7)
    assert _shown_defaults("caption")["--concurrency"] == "7"


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the app, sub-commands of groups (``mil train``, ``assistant train``) included."""
    ctx = type(group).context_class(group)  # typer may bring its own click: no isinstance on click's
    paths = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            paths += _command_paths(command, (*prefix, name))
        elif command is not None:
            paths.append((*prefix, name))
    return paths


def test_no_command_or_sub_command_shows_an_unfilled_default_marker():
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert ("assistant", "train") in paths and ("mil", "train") in paths  # sub-apps are walked
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
        assert result.exit_code == 0, (path, result.output)
        assert "<<" not in result.output, (path, result.output)
