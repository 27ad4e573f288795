"""No API key in anything pathgen stores or prints: a server that echoes the Authorization header,
a key passed where its variable's name belongs, a key inside a base URL."""

from __future__ import annotations

import base64
from pathlib import Path

from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.config import CaptionConfig, RunConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal
from pathgen.pipeline import run_pipeline

KEY = "pgk4Qm9Zr2Lx7Vb1Nc8Ty3Wd"  # no known key shape: it must be caught by where it stands
ECHO = ServerConfig(faults={"describe": ["echo_auth"]})  # 401 whose body echoes the request headers


def _bytes_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_server_echoing_the_bearer_key_leaves_it_in_no_file_and_no_output(make_cmu_run, monkeypatch):
    run = make_cmu_run(2)
    monkeypatch.setenv("PATHGEN_TEST_KEY", KEY)
    with FakeServer(ECHO) as server:
        args = ["caption", str(run.root), "--base-url", server.base_url, "--model", "fake-vlm"]
        result = CliRunner().invoke(app, [*args, "--api-key-env", "PATHGEN_TEST_KEY", "--no-progress"])
        sent = {e["auth"] for e in server.log}
    assert sent == {f"Bearer {KEY}"}  # the key was used, and the server sent it back
    assert result.exit_code == 1, result.output  # every tile failed (401)
    with Journal(run.journal) as journal:
        errors = [r["error"] for r in journal.rows()]
    assert len(errors) == 2 and all("HTTP 401" in e and '"authorization": "***"' in e for e in errors)
    assert KEY not in result.output
    assert KEY.encode() not in _bytes_under(run.root)


def test_key_in_the_base_url_is_used_but_never_stored(make_cmu_run, cmu_small, tmp_path):
    url_of = lambda server: server.base_url.replace("http://", f"http://user:{KEY}@")  # noqa: E731
    basic = base64.b64encode(f"user:{KEY}".encode()).decode()
    # config.yaml: `pathgen run` writes the resolved config beside the outputs.
    with FakeServer(ECHO) as server:
        cfg = RunConfig(slides=[str(cmu_small)], caption=CaptionConfig(base_url=url_of(server)))
        root = tmp_path / "pipe"
        run_pipeline(cfg, root, until="tile")
        text = (root / "config.yaml").read_text()
        assert KEY not in text and basic not in text
        assert RunConfig.from_yaml(root / "config.yaml").caption.base_url == server.base_url
        # The credentials still work: they go in the Authorization header (Basic, as curl does).
        run = make_cmu_run(2)
        args = ["caption", str(run.root), "--base-url", url_of(server), "--model", "fake-vlm"]
        result = CliRunner().invoke(app, [*args, "--no-progress"])
        sent = {e["auth"] for e in server.log}
    assert sent == {f"Basic {basic}"}
    assert result.exit_code == 1 and KEY not in result.output and basic not in result.output
    stored = _bytes_under(run.root)
    assert KEY.encode() not in stored and basic.encode() not in stored
    assert b"HTTP 401" in stored  # the echo did reach the journal, masked


def test_a_key_given_as_api_key_env_is_refused_without_echoing_it(cmu_run, tmp_path):
    runner = CliRunner()
    for key in ("sk-proj-" + KEY, KEY):
        args = ["caption", str(cmu_run.root), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
        result = runner.invoke(app, [*args, "--api-key-env", key, "--no-progress"])
        assert result.exit_code == 2, result.output
        assert "NAME of an environment variable" in " ".join(result.output.split())
        assert key not in result.output and KEY not in result.output
    config = tmp_path / "run.yaml"
    config.write_text(f"slides: [{cmu_run.root}]\ncaption:\n  api_key_env: {KEY}\n")
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "api_key_env" in result.output and KEY not in result.output
    assert not cmu_run.journal.exists()
