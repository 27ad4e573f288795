"""The review app's guards and its hook into export, through FastAPI's test client (no browser)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from review_testkit import review_run
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.review.app import create_app
from pathgen.review.curate import curate, reviews_path
from pathgen.review.serve import resolve_token
from pathgen.review.store import ReviewStore, agreement

TOKEN = "s3cret-token-for-tests-0123456789"
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def reviewed(demo_run_template, tmp_path_factory):
    return review_run(demo_run_template, tmp_path_factory.mktemp("api"))


def test_only_loopback_without_a_token(monkeypatch):
    monkeypatch.delenv("PATHGEN_REVIEW_TOKEN", raising=False)
    assert resolve_token("127.0.0.1", None) is None and resolve_token("::1", None) is None
    for host in ("0.0.0.0", "192.168.1.20", "example.org"):
        with pytest.raises(ValueError, match="give --token"):
            resolve_token(host, None)
    assert resolve_token("0.0.0.0", TOKEN) == TOKEN
    with pytest.raises(ValueError, match="at least 16"):
        resolve_token("0.0.0.0", "short")
    monkeypatch.setenv("PATHGEN_REVIEW_TOKEN", TOKEN)
    assert resolve_token("0.0.0.0", None) == TOKEN


def test_cli_refuses_a_public_host_without_token(reviewed, monkeypatch):
    monkeypatch.delenv("PATHGEN_REVIEW_TOKEN", raising=False)
    run, _ = reviewed
    result = CliRunner().invoke(app, ["review", str(run), "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2 and "give --token" in " ".join(result.output.split())


def test_token_is_required_on_every_route(reviewed):
    run, _ = reviewed
    client = TestClient(create_app(run, token=TOKEN), base_url="http://10.0.0.5:8765")
    for path in ("/", "/api/pairs", "/image/patch/0.jpg", "/files/export/README.md"):
        assert client.get(path).status_code == 401, path
    assert client.get("/api/pairs", headers={"X-Review-Token": "wrong" + TOKEN}).status_code == 401
    assert client.get("/api/pairs", headers={"X-Review-Token": TOKEN}).status_code == 200
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and "review_token" in first.headers["set-cookie"]
    assert client.get("/image/patch/0.jpg").status_code == 200  # the cookie now carries it
    assert TOKEN not in first.text


def test_guards_without_token(reviewed):
    run, tiles = reviewed
    client = TestClient(create_app(run), base_url=LOCAL)
    before = len(ReviewStore(reviews_path(run)).all())
    assert TestClient(create_app(run), base_url="http://evil.example").get("/").status_code == 403
    body = {"tile_id": tiles[0], "decision": "accept", "reviewer": "Dr X"}
    assert (
        client.post("/api/decision", content=str(body), headers={"content-type": "text/plain"}).status_code
        == 415
    )
    cross = client.post("/api/decision", json=body, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    assert client.post("/api/decision", json={**body, "reviewer": " "}).status_code == 422
    assert client.post("/api/decision", json={**body, "tile_id": "nope:0:0:1"}).status_code == 404
    long = client.post("/api/decision", json={**body, "decision": "edit", "caption": "tumour " * 90})
    assert long.status_code == 422 and "CLIP tokens" in long.json()["detail"]
    assert len(ReviewStore(reviews_path(run)).all()) == before  # nothing refused was written
    for path in ("/files/%2e%2e/config.yaml", "/files/export/../journal.sqlite", "/image/context/99.jpg"):
        assert client.get(path).status_code == 404, path
    assert client.get("/image/context/0.jpg").headers["content-type"] == "image/jpeg"


def test_latest_decision_counts_and_agreement_reaches_the_card(reviewed):
    run, tiles = reviewed
    client = TestClient(create_app(run), base_url=LOCAL)
    decide = lambda t, d, who, caption=None: client.post(  # noqa: E731
        "/api/decision", json={"tile_id": t, "decision": d, "reviewer": who, "caption": caption}
    )
    assert decide(tiles[0], "accept", "Dr A").status_code == 200
    assert decide(tiles[0], "accept", "Dr B").status_code == 200
    assert decide(tiles[1], "reject", "Dr A").status_code == 200
    assert decide(tiles[1], "accept", "Dr B").status_code == 200  # disagreement; the latest counts
    assert decide(tiles[2], "reject", "Dr A").status_code == 200
    listed = client.get("/api/pairs", params={"status": "accept"}).json()
    assert [p["tile_id"] for p in listed["pairs"]] == tiles[:2] and listed["counts"]["reject"] == 1

    store = ReviewStore(reviews_path(run))
    assert len(store.all()) == 5 and store.latest()[tiles[1]].reviewer == "Dr B"
    agree = agreement(store.latest_by_reviewer())
    assert agree == {"pairs": 2, "comparisons": 2, "same_decision": 0.5, "same_keep": 0.5}

    result = CliRunner().invoke(app, ["export", str(run)])
    assert result.exit_code == 0, result.output
    card = (run / "export" / "README.md").read_text()
    assert "2 pair(s) reviewed by two or more reviewers: same decision 50%, same keep/reject 50%" in card
    assert "review_rejected | 1" in card


def test_an_edit_over_the_context_is_cut_and_marked(tmp_path):
    store = ReviewStore(reviews_path(tmp_path))
    store.add("s:0:0:672", "edit", "Dr A", "Dense lymphocytic infiltrate. " * 20)
    store.add("s:672:0:672", "edit", "Dr A", "Glandular epithelium with mucin.")
    records = [
        {"tile_id": "s:0:0:672", "caption": "agent", "status": "ok", "flags": []},
        {"tile_id": "s:672:0:672", "caption": "agent", "status": "ok", "flags": []},
        {"tile_id": "s:1344:0:672", "caption": "agent", "status": "ok", "flags": []},
    ]
    out = curate(tmp_path, records, context_length=77)
    cut, short, untouched = out.records
    from pathgen.agents.fit import fits

    assert (
        cut["status"] == "truncated" and "review_edit_truncated" in cut["flags"] and fits(cut["caption"], 77)
    )
    assert cut["caption"].startswith("Dense lymphocytic infiltrate.")
    assert short["caption"] == "Glandular epithelium with mucin." and short["status"] == "ok"
    assert (untouched["reviewed"], untouched["reviewer"], untouched["caption"]) == (False, None, "agent")


@pytest.mark.slow
def test_the_command_serves_the_app(reviewed, monkeypatch):
    """`pathgen review RUN --port P` as a user runs it: the page and the pairs answer on 127.0.0.1.

    Slow: a fresh interpreter imports torch and open_clip (the CLIP tokenizer) before it listens."""
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from review_testkit import free_port

    run, tiles = reviewed
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PATHGEN_REVIEW_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pathgen.cli", "review", str(run), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/pairs", timeout=2) as res:
                    listed = json.load(res)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        proc.stdout.read().decode() if proc.stdout else "no output"
                    ) from None
                time.sleep(0.2)
        assert [p["tile_id"] for p in listed["pairs"]] == tiles
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as res:
            assert b'<script src="/static/app.js"' in res.read()
    finally:
        proc.terminate()
        proc.wait(10)
