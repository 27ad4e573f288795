"""Helpers of the review tests: a run to review, and the app served by uvicorn in a thread."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

HTML_CAPTION = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2"> <b>bold</b> tumour'


def review_run(template: Path, dest: Path) -> tuple[Path, list[str]]:
    """A copy of the demo run whose 4th pair's caption holds HTML; returns (run, tile ids in order)."""
    run = dest / "run"
    shutil.copytree(template, run)
    tiles = [r["tile_id"] for r in pq.read_table(run / "export" / "index.parquet").to_pylist()]
    con = sqlite3.connect(run / "journal.sqlite")
    with con:
        n = con.execute(
            "UPDATE calls SET output = ? WHERE agent = 'summarize' AND tile_id = ?", (HTML_CAPTION, tiles[3])
        ).rowcount
    con.close()
    assert n == 1
    return run, tiles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
