"""The review app in a real headless Chromium (Debian's, driven by Playwright): accept, edit and
reject with the keyboard, reload and see them kept, then export and find them in the dataset."""

from __future__ import annotations

import http.client
import io
import json
import tarfile
from urllib.parse import urlparse

import pyarrow.parquet as pq
import pytest
from review_testkit import HTML_CAPTION, review_run, serving
from typer.testing import CliRunner

from browser import CHROMIUM, needs_chromium
from pathgen.cli import app
from pathgen.review.app import create_app

EDITED = "Sheets of atypical squamous cells with keratin pearls in a desmoplastic stroma, reviewed by hand."


def _raw_get(base: str, path: str) -> int:
    """GET ``path`` exactly as written (no client-side ``..`` normalisation); the status code."""
    where = urlparse(base)
    con = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        con.request("GET", path)
        return con.getresponse().status
    finally:
        con.close()


@pytest.fixture
def run_to_review(demo_run_template, tmp_path):
    return review_run(demo_run_template, tmp_path)


@needs_chromium
def test_review_in_chromium_then_export(run_to_review, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run, tiles = run_to_review
    with serving(create_app(run)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            # The page must keep data inert by itself (textContent), without its CSP's help
            # (bypassing the CSP also lets the test evaluate its own JavaScript).
            page = browser.new_page(bypass_csp=True)
            page.goto(base + "/")
            expect(page.locator("#position")).to_have_text(f"pair 1 / {len(tiles)}")
            page.fill("#reviewer", "Dr A")
            page.keyboard.press("Escape")  # leave the name field: keys are shortcuts again
            page.keyboard.press("a")
            expect(page.locator("#position")).to_have_text(f"pair 2 / {len(tiles)}")
            page.keyboard.press("e")
            assert page.evaluate("document.activeElement.id") == "edit"
            page.fill("#edit", EDITED)
            page.keyboard.press("Control+Enter")
            expect(page.locator("#position")).to_have_text(f"pair 3 / {len(tiles)}")
            page.keyboard.press("r")
            expect(page.locator("#position")).to_have_text(f"pair 4 / {len(tiles)}")
            # the caption holding HTML is shown as its text: no element made, no script run
            expect(page.locator("#caption")).to_have_text(HTML_CAPTION)
            assert page.eval_on_selector("#caption", "e => e.children.length") == 0
            assert page.evaluate("window.__xss") is None
            # the patch and its slide context are real JPEGs
            page.wait_for_function("() => document.getElementById('context').naturalWidth > 0")
            assert page.evaluate("document.getElementById('patch').naturalWidth") == 672
            page.click("#zoom")  # the patch zooms where it is clicked
            assert "scale(3)" in page.eval_on_selector("#patch", "e => e.style.transform")

            page.reload()
            expect(page.locator("#position")).to_have_text(f"pair 1 / {len(tiles)}")
            expect(page.locator("#status")).to_have_text("accept")
            expect(page.locator("#status-by")).to_have_text("by Dr A")
            page.keyboard.press("j")
            expect(page.locator("#status")).to_have_text("edit")
            expect(page.locator("#edit")).to_have_value(EDITED)
            page.keyboard.press("j")
            expect(page.locator("#status")).to_have_text("reject")
            page.select_option("#f-status", "pending")
            expect(page.locator("#position")).to_have_text(f"pair 1 / {len(tiles) - 3}")
            page.select_option("#f-status", "")
            page.select_option("#f-project", "TCGA-HNSC")
            expect(page.locator("#position")).to_have_text("pair 1 / 4")
        finally:
            browser.close()

        # path traversal, however spelled, never leaves the served folders
        assert _raw_get(base, "/files/export/README.md") == 200
        for path in (
            "/files/../../../../etc/passwd",
            "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/files/export/..%2f..%2f..%2fetc%2fpasswd",
            "/files/export/../config.yaml",
            "/files/reviews.sqlite",
            "/image/patch/..%2f..%2fconfig.yaml",
            "/image/patch/-1.jpg",
            "/static/..%2fapp.py",
        ):
            assert _raw_get(base, path) == 404, path

    result = CliRunner().invoke(app, ["export", str(run)])
    assert result.exit_code == 0, result.output
    index = pq.read_table(run / "export" / "index.parquet").to_pylist()
    assert [r["tile_id"] for r in index] == [t for t in tiles if t != tiles[2]]
    by_tile = {r["tile_id"]: r for r in index}
    assert by_tile[tiles[1]]["caption"] == EDITED
    released = json.loads((run / "export" / "pathgen.json").read_text())
    assert EDITED in [r["caption"] for r in released]
    metas = {}
    for shard in sorted((run / "export" / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar:
                if m.name.endswith(".json"):
                    meta = json.load(io.BytesIO(tar.extractfile(m).read()))
                    metas[meta["tile_id"]] = meta
    assert (metas[tiles[0]]["reviewed"], metas[tiles[0]]["reviewer"]) == (True, "Dr A")
    assert (metas[tiles[1]]["reviewed"], metas[tiles[1]]["caption"]) == (True, EDITED)
    assert all(metas[t]["reviewed"] is False and metas[t]["reviewer"] == "" for t in tiles[3:])
    card = (run / "export" / "README.md").read_text()
    assert (
        "review_rejected | 1" in card
        and "3 pairs reviewed by 1 reviewer(s): 1 accept, 1 edit, 1 reject" in card
    )
