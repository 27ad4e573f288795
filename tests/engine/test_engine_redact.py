"""redact(): secrets masked in any text pathgen stores or prints; prose left alone."""

from __future__ import annotations

import base64

import pytest

from pathgen.engine.fakeserver import CAPTION, DESCRIPTION, REVISED
from pathgen.engine.journal import Journal
from pathgen.redact import looks_like_secret, redact, redact_url, url_auth_header

KEY = "pgk4Qm9Zr2Lx7Vb1Nc8Ty3Wd"  # no known key shape: only its context can give it away


@pytest.mark.parametrize(
    "text",
    [
        f'HTTP 401: {{"error": {{"request_headers": {{"authorization": "Bearer {KEY}", "host": "h"}}}}}}',
        f"Authorization: Bearer {KEY}\r\nHost: h",
        f"proxy-authorization: Basic {KEY}",
        f"401: token Bearer {KEY} was rejected",
        f"GET /v1/models?api_key={KEY}&x=1",
        f'{{"api-key": "{KEY}"}}',
        f"x-api-key: {KEY}",
        f'malformed response: b\'{{"access_token": "{KEY}"}}\'',
        f"connect to http://user:{KEY}@127.0.0.1:8000/v1 failed",
        f"base URL must start with http:// or https://, got 'ftp://{KEY}@host/v1'",
    ],
)
def test_key_in_context_is_masked(text):
    out = redact(text)
    assert KEY not in out and "***" in out


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-" + "Ab3" * 10,
        "sk-ant-api03-" + "x9" * 20,
        "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz12345678",
        "ghp_" + "a1" * 18,
        "AKIA" + "ABCDEFGHIJKLMNOP",
    ],
)
def test_bare_key_shapes_are_masked(key):
    assert key not in redact(f"the server said: unknown key {key}.")


def test_prose_and_captions_are_untouched():
    for text in (DESCRIPTION, REVISED, CAPTION, "A basic architecture; the bearer of atypia.", "a@b.org"):
        assert redact(text) == text
    assert redact("see http://host/x?y=a@b") == "see http://host/x?y=a@b"


def test_url_credentials_stripped_and_turned_into_a_header():
    url = f"http://user:{KEY}@127.0.0.1:8000/v1"
    assert redact_url(url) == "http://127.0.0.1:8000/v1"
    assert redact_url("https://h/v1") == "https://h/v1"
    basic = base64.b64encode(f"user:{KEY}".encode()).decode()
    assert url_auth_header([url, url]) == {"Authorization": f"Basic {basic}"}
    assert url_auth_header("http://h/v1") == {}
    with pytest.raises(ValueError, match="different credentials") as info:
        url_auth_header([url, "http://other:pw@h2/v1"])  # never one host's key sent to another
    assert KEY not in str(info.value)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "HF_TOKEN", "VLLM_API_KEY_FOR_PROD_CLUSTER_2024", "KEY2"])
def test_variable_names_are_names(name):
    assert not looks_like_secret(name)


@pytest.mark.parametrize("value", ["sk-abc123", "hf_" + "a" * 34, KEY, "a" * 40, "key with spaces"])
def test_keys_are_not_names(value):
    assert looks_like_secret(value)


def test_journal_masks_server_text_before_it_reaches_the_file(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        row = {"key": "k", "tile_id": "t", "agent": "describe", "prompt_version": "v1", "model": "m"}
        row |= {"params": "p", "upstream": "", "status": "error", "attempts": 1}
        journal.put({**row, "error": f'HTTP 401: {{"authorization": "Bearer {KEY}"}}'})
        assert journal.rows()[0]["error"] == 'HTTP 401: {"authorization": "***"}'
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert KEY.encode() not in data
