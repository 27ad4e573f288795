"""The OpenAI-compatible generator against a real local HTTP server (no mocks)."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from pathgen.agents.revise import REVISION_SCHEMA, parse_revision
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.models.gen_openai import OpenAIGenerator
from pathgen.models.generators import (
    GenerationParams,
    ImagePart,
    PermanentError,
    TransientError,
    load_generator,
)

MESSAGES = [
    {"role": "system", "content": "You describe."},
    {"role": "user", "content": [{"type": "image", "image": ImagePart(Image.new("RGB", (64, 64), "pink"))}]},
]


def _gen(server: FakeServer, **kw) -> OpenAIGenerator:
    return OpenAIGenerator("fake-vlm", [server.base_url], timeout_s=kw.pop("timeout_s", 5.0), **kw)


async def _one(gen: OpenAIGenerator, rid: str = "r1"):
    try:
        return await gen.generate(MESSAGES, GenerationParams(max_tokens=64, extra_body={"top_k": 5}), rid)
    finally:
        await gen.aclose()


@pytest.mark.parametrize("transport", ["native", "aiohttp"])
def test_generates_and_builds_a_complete_payload(transport):
    with FakeServer() as server:
        gen = _gen(server, image_size=48, transport=transport)
        payload = gen.build_payload(MESSAGES, GenerationParams(seed=3, extra_body={"top_k": 5}))
        result = asyncio.run(_one(gen))
    assert result.text.startswith("The image shows") and result.finish_reason == "stop"
    assert result.tokens_in > 0 and result.tokens_out > 0 and result.latency > 0
    part = payload["messages"][1]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert payload["seed"] == 3 and payload["top_k"] == 5 and payload["model"] == "fake-vlm"
    assert server.completed("describe") == ["r1"]


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("429", TransientError, 429),
        ("500", TransientError, 500),
        ("malformed", TransientError, None),
        ("drop", TransientError, None),
    ],
)
@pytest.mark.parametrize("transport", ["native", "aiohttp"])
def test_faults_become_typed_errors(fault, error, status, transport):
    with (
        FakeServer(ServerConfig(faults={"describe": [fault]}, retry_after=2.5)) as server,
        pytest.raises(error) as info,
    ):
        asyncio.run(_one(_gen(server, transport=transport)))
    assert info.value.status == status
    if fault == "429":
        assert info.value.retry_after == 2.5


def test_timeout_and_unknown_route():
    with FakeServer(ServerConfig(faults={"describe": ["slow"]}, slow_s=2.0)) as server:
        with pytest.raises(TransientError, match="timeout"):
            asyncio.run(_one(_gen(server, timeout_s=0.2)))
        bad = OpenAIGenerator("m", [server.base_url.replace("/v1", "/nope")], timeout_s=5)
        with pytest.raises(PermanentError):
            asyncio.run(_one(bad))


def test_round_robin_over_base_urls():
    with FakeServer() as a, FakeServer() as b:
        gen = OpenAIGenerator("m", [a.base_url, b.base_url])

        async def four():
            try:
                for i in range(4):
                    await gen.generate(MESSAGES, GenerationParams(), f"r{i}")
            finally:
                await gen.aclose()

        asyncio.run(four())
    assert len(a.completed()) == 2 and len(b.completed()) == 2


def test_api_key_from_env_is_required_and_never_shown(monkeypatch):
    with pytest.raises(ValueError, match="PATHGEN_TEST_KEY"):
        OpenAIGenerator("m", ["http://127.0.0.1:1/v1"], api_key_env="PATHGEN_TEST_KEY")
    monkeypatch.setenv("PATHGEN_TEST_KEY", "sk-secret-123")
    gen = OpenAIGenerator("m", ["http://127.0.0.1:1/v1"], api_key_env="PATHGEN_TEST_KEY")
    assert "sk-secret" not in repr(gen)
    asyncio.run(gen.aclose())


def test_load_generator_resolves_specs_and_rejects_unknown():
    gen = load_generator("openai:my-model", base_url="http://127.0.0.1:9/v1")
    assert isinstance(gen, OpenAIGenerator) and gen.name == "my-model"
    asyncio.run(gen.aclose())
    with pytest.raises(ValueError, match="Valid forms"):
        load_generator("gpt-nothing")
    with pytest.raises(ValueError, match="http"):
        load_generator("m", base_url="127.0.0.1:8000")


def test_request_body_decodes_to_the_payload():
    """The orjson body is the payload: escapes, non-ASCII text and the image data URL survive."""
    import json

    gen = OpenAIGenerator("m", ["http://127.0.0.1:9/v1"], image_size=48)
    image = ImagePart(Image.new("RGB", (64, 64), "pink"))
    messages = [
        {"role": "system", "content": 'Quote " backslash \\ and \x00 and é.'},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "a"}]},
    ]
    params = GenerationParams(seed=3, extra_body={"top_k": 5})
    body = json.loads(gen.encode_body(messages, params))
    assert body == gen.build_payload(messages, params)
    assert body["messages"][0]["content"] == 'Quote " backslash \\ and \x00 and é.'
    assert body["messages"][1]["content"][0]["image_url"]["url"] == image.data_url(48, 90)
    assert "response_format" not in body
    asyncio.run(gen.aclose())


# -- structured output (response_format with the revise schema) --------------------------------------
REVISE_MESSAGES = [
    {"role": "system", "content": 'Answer JSON {"edits": [...], "revised": "..."}.'},  # the fake: revise
    {"role": "user", "content": "Description: tumour cells."},
]


def _revise(gen: OpenAIGenerator, n: int = 1, rid: str = "rev") -> list[str]:
    params = GenerationParams(json_schema=REVISION_SCHEMA)

    async def run():
        try:
            return [(await gen.generate(REVISE_MESSAGES, params, f"{rid}{i}")).text for i in range(n)]
        finally:
            await gen.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize(("mode", "sent"), [("auto", True), ("on", True), ("off", False)])
def test_request_carries_the_revise_schema_when_enabled(mode, sent):
    import json

    gen = OpenAIGenerator("m", ["http://127.0.0.1:9/v1"], structured_output=mode)
    params = GenerationParams(json_schema=REVISION_SCHEMA)
    body = json.loads(gen.encode_body(REVISE_MESSAGES, params, gen.wants_schema(params, gen.base_urls[0])))
    if sent:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "revision", "schema": REVISION_SCHEMA, "strict": True},
        }
    else:
        assert "response_format" not in body
    # Agents without a schema never send one.
    assert not gen.wants_schema(GenerationParams(), gen.base_urls[0])
    asyncio.run(gen.aclose())
    with FakeServer() as server:
        texts = _revise(_gen(server, structured_output=mode))
    assert [e["structured"] for e in server.log] == [sent]
    assert parse_revision(texts[0]).revised


def test_schema_rejection_falls_back_to_the_prompt_and_is_remembered_per_base_url():
    with FakeServer(ServerConfig(structured_output="reject")) as old, FakeServer() as new:
        gen = _gen(old, structured_output="auto")
        gen2 = OpenAIGenerator("m", [old.base_url, new.base_url], timeout_s=5.0)
        texts = _revise(gen, n=3)
        _revise(gen2, n=4, rid="two")
    # One rejected request, then prompt-only: the fallback answered every call.
    assert [e["fault"] == "schema_rejected" for e in old.log][:2] == [True, False]
    assert sum(e["fault"] == "schema_rejected" for e in old.log) == 2  # once per generator
    assert len(texts) == 3 and gen.schema_rejected == {old.base_url}
    assert [e["structured"] for e in old.log if e["fault"] != "schema_rejected"] == [False] * 5
    # The server that supports it keeps getting the schema.
    assert [e["structured"] for e in new.log] == [True, True]


def test_schema_rejection_is_an_error_when_structured_output_is_on():
    with FakeServer(ServerConfig(structured_output="reject")) as old, pytest.raises(PermanentError) as info:
        _revise(_gen(old, structured_output="on"))
    assert info.value.status == 400 and "response_format" in str(info.value)


def test_structured_output_lowers_the_reask_rate():
    """Against a server whose model answers prose for a fifth of prompt-only revise calls, the
    revise agent re-asks; with the schema enforced it never has to."""
    from pathgen.agents.base import TileContext
    from pathgen.agents.prompts import load_prompt
    from pathgen.agents.revise import ReviseAgent
    from pathgen.engine.caller import Caller, Stats
    from pathgen.engine.retry import RetryPolicy
    from pathgen.records import CaptionTile

    def tile(i: int) -> CaptionTile:
        return CaptionTile(tile_id=f"t{i}", slide_id="s", x=0, y=0, size=672)

    def reasks(server: FakeServer, mode: str) -> tuple[int, list[str]]:
        gen = _gen(server, structured_output=mode)
        agent = ReviseAgent(load_prompt("revise"), gen, GenerationParams(max_tokens=256), max_reasks=2)

        async def run():
            caller = Caller(16, RetryPolicy(max_retries=0), Stats())
            try:
                return await asyncio.gather(
                    *(
                        agent.run(TileContext(tile(i), description="Some text."), caller, f"{mode}-{i}")
                        for i in range(40)
                    )
                )
            finally:
                await gen.aclose()

        outcomes = asyncio.run(run())
        return sum(o.reasks for o in outcomes), [o.status for o in outcomes]

    with FakeServer(ServerConfig(invalid_json_rate=0.2)) as server:
        off, off_status = reasks(server, "off")
        auto, auto_status = reasks(server, "auto")
    assert auto_status == ["ok"] * 40 and auto == 0
    assert off >= 3  # ~10 expected (40 tiles x 0.2 + re-asks that answer prose again)
    assert off_status.count("ok") >= 35  # prose three times in a row rejects a tile (~1 in 125)


def test_revision_schema_matches_the_pydantic_model():
    """The schema sent to servers and the model that validates answers describe the same object."""
    from typing import get_args

    from pathgen.agents.revise import Edit, Revision

    assert (
        set(REVISION_SCHEMA["properties"]) == set(REVISION_SCHEMA["required"]) == set(Revision.model_fields)
    )
    items = REVISION_SCHEMA["properties"]["edits"]["items"]
    assert set(items["properties"]) == set(items["required"]) == set(Edit.model_fields)
    assert items["properties"]["type"]["enum"] == list(get_args(Edit.model_fields["type"].annotation))
    answer = '{"edits": [{"type": "add", "before": "", "after": "x"}], "revised": "Text."}'
    assert parse_revision(answer).edits[0].type == "add"
    assert parse_revision(f"Sure:\n```json\n{answer}\n```").revised == "Text."


def test_a_key_cut_at_the_error_limit_is_still_redacted():
    """An error body is redacted before it is cut to 300 characters: cut first, a key straddling the
    limit would keep a fragment too short for the key patterns."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    key = "sk-" + "Q7x9" * 10
    body = ("x" * 290 + " api_key=" + key).encode()

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(400)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = OpenAIGenerator("m", [f"http://u:{key}@127.0.0.1:{server.server_port}/v1"], timeout_s=5.0)
        assert key not in repr(gen)
        with pytest.raises(PermanentError) as info:
            asyncio.run(_one(gen))
    finally:
        server.shutdown()
    message = str(info.value)
    assert "HTTP 400" in message and "Q7x9Q7" not in message and "sk-Q" not in message
