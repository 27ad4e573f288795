"""Binding the review app: loopback by default; any other address only with a token.

Why: the app shows patient tissue and writes decisions that change the dataset; on a shared
network anyone who can reach the port could do both. The token never appears in what pathgen
prints (the URL printed says where to put it).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

TOKEN_ENV = "PATHGEN_REVIEW_TOKEN"
MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> str | None:
    """The token the app will require (``token``, else ``$PATHGEN_REVIEW_TOKEN``), validated.

    Raises ValueError when ``host`` is not loopback and there is no token, or the token is short.
    """
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None:
        token = token.strip()
        if len(token) < MIN_TOKEN:
            raise ValueError(
                f"the review token must have at least {MIN_TOKEN} characters "
                "(make one: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
    if not is_loopback(host) and token is None:
        raise ValueError(
            f"binding {host} exposes the run to the network: give --token (or set {TOKEN_ENV}); "
            "without a token the app only binds 127.0.0.1"
        )
    return token


def serve(
    run_root: str, host: str, port: int, token: str | None, on_ready: Callable[[], None] | None = None
) -> None:
    """Run the app until Ctrl+C (uvicorn); ``on_ready`` is called once the app is built."""
    import uvicorn

    from pathgen.review.app import create_app

    app = create_app(run_root, token=token)
    if on_ready is not None:
        on_ready()
    uvicorn.run(app, host=host, port=port, log_level="warning")
