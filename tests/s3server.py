"""A real S3 server on 127.0.0.1 for the object-storage tests (moto's threaded server, no network).

One server per test session (starting one takes a moment); each test gets its own bucket and the
fake credentials and endpoint in its environment, the way a user gives them (AWS_* variables):
pathgen itself is never told about the server.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_server: Any = None


def _endpoint() -> str:
    global _server
    if _server is None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        _server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        _server.start()
    host, port = _server.get_host_and_port()
    return f"http://{host}:{port}"


@dataclass
class Bucket:
    """A fresh bucket on the local server; ``url(key)`` is its ``s3://`` URL."""

    name: str
    fs: Any

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def put(self, local: Path, key: str) -> str:
        self.fs.put_file(str(local), f"{self.name}/{key}")
        return self.url(key)

    def keys(self, prefix: str = "") -> dict[str, int]:
        """Every object under ``prefix``: key (relative to the prefix) -> size."""
        self.fs.invalidate_cache()
        root = f"{self.name}/{prefix}".rstrip("/")
        found = self.fs.find(root, detail=True)
        return {k[len(root) + 1 :]: int(v["size"]) for k, v in found.items()}


def make_bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """Credentials and endpoint into the environment, and an empty bucket."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    for key, value in {**FAKE_ENV, "AWS_ENDPOINT_URL": _endpoint()}.items():
        monkeypatch.setenv(key, value)
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    name = f"pathgen-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return Bucket(name, fs)
