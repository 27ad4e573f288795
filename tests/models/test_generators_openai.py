"""The OpenAI-compatible generator against a real local HTTP server (no mocks)."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

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


@pytest.mark.parametrize("transport", ["native", "httpx"])
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
@pytest.mark.parametrize("transport", ["native", "httpx"])
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


def test_request_body_is_the_plain_json_dump_of_the_payload():
    """encode_body pastes cached data URLs into a placeholder dump: it must be byte-identical."""
    import json

    gen = OpenAIGenerator("m", ["http://127.0.0.1:9/v1"], image_size=48)
    image = ImagePart(Image.new("RGB", (64, 64), "pink"))
    messages = [
        {"role": "system", "content": 'Quote " backslash \\ and \x00 and é.'},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "a"}]},
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": f"{gen._mark}0\x00"}],
        },
    ]
    params = GenerationParams(seed=3, extra_body={"top_k": 5})
    plain = json.dumps(gen.build_payload(messages, params), separators=(",", ":")).encode()
    assert gen.encode_body(messages, params) == plain
    assert (
        gen.encode_body(messages[:2], params)
        == json.dumps(gen.build_payload(messages[:2], params), separators=(",", ":")).encode()
    )
    asyncio.run(gen.aclose())
