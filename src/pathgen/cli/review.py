"""`pathgen review`: the local web app where people accept, edit or reject pairs."""

from __future__ import annotations

from pathlib import Path

import typer

from pathgen.cli.app import DATA, app
from pathgen.cli.common import console, fail
from pathgen.cli.defaults import config_default


@app.command("review", rich_help_panel=DATA)
def review(
    run: Path = typer.Argument(..., help="run directory with captions"),
    port: int | None = typer.Option(None, help=f"port {config_default('review', 'port')}"),
    host: str | None = typer.Option(
        None, help=f"address to bind; not loopback needs --token {config_default('review', 'host')}"
    ),
    token: str | None = typer.Option(
        None, help="token every request must carry (or set PATHGEN_REVIEW_TOKEN); required off loopback"
    ),
) -> None:
    """Serve the review app: page through pairs, accept (a) / edit (e, Ctrl+Enter) / reject (r).

    Decisions go to RUN/reviews.sqlite (every one, with time and reviewer; the latest counts);
    `pathgen export RUN` then uses edited captions and leaves rejected pairs out.
    Example: `pathgen review runs/demo` and open http://127.0.0.1:8765/.
    """
    from pydantic import ValidationError

    from pathgen.cli.common import with_options
    from pathgen.config import ReviewConfig, RunConfig

    if not run.is_dir():
        raise fail(f"run directory not found: {run}")
    try:
        base = (
            RunConfig.from_yaml(run / "config.yaml").review
            if (run / "config.yaml").exists()
            else ReviewConfig()
        )
        cfg = with_options(base, host=host, port=port)
    except (ValidationError, ValueError) as exc:
        raise fail(f"bad configuration: {exc}") from exc
    from pathgen.review.serve import resolve_token, serve

    try:
        secret = resolve_token(cfg.host, token)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    url = f"http://{cfg.host}:{cfg.port}/" + ("?token=<your token>" if secret else "")
    try:
        serve(
            str(run), cfg.host, cfg.port, secret,
            on_ready=lambda: console.print(f"review app for {run}: {url}   (Ctrl+C stops it)"),
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
