"""Sampling, retry and generator defaults are read from the config models, never written twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pathgen.config import CaptionConfig, TileConfig, default_of, section_model

# Distinct values the code cannot hold by chance; set as the config's defaults in a fresh interpreter.
CHANGED = {
    "temperature": 0.37, "top_p": 0.61, "max_tokens": 333, "seed": 17, "max_retries": 9, "backoff_s": 0.07,
    "backoff_max_s": 11.0, "timeout_s": 55.0, "image_size": 448, "concurrency": 13, "max_reasks": 5,
    "context_length": 99,
}  # fmt: skip

PROBE = """
import inspect, json, sys
from pathgen.config import CaptionConfig
for name, value in json.loads(sys.argv[1]).items():
    CaptionConfig.model_fields[name].default = value
from pathgen.agents.base import Agent
from pathgen.engine.retry import RetryPolicy
from pathgen.models.generators import GenerationParams, load_generator
p, r = GenerationParams(), RetryPolicy()
gen = inspect.signature(load_generator).parameters
agent = inspect.signature(Agent).parameters
print(json.dumps({
    "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens, "seed": p.seed,
    "max_retries": r.max_retries, "backoff_s": r.base_s, "backoff_max_s": r.max_s, "timeout_s": r.timeout_s,
    "image_size": gen["image_size"].default, "concurrency": gen["concurrency"].default,
    "max_reasks": agent["max_reasks"].default, "context_length": agent["context_length"].default,
    "generator_timeout_s": gen["timeout_s"].default,
}))
"""


def test_code_defaults_follow_the_config_models():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(CHANGED)], capture_output=True, text=True, check=True
    ).stdout
    got = json.loads(out)
    assert got.pop("generator_timeout_s") == CHANGED["timeout_s"]
    assert got == CHANGED


def test_default_of_reads_a_field_and_names_what_is_missing():
    assert default_of(CaptionConfig, "concurrency") == CaptionConfig().concurrency
    assert default_of(CaptionConfig, "extra_body") == {}  # a factory default is called
    assert section_model("tile") is TileConfig
    with pytest.raises(KeyError, match="no field 'nope'"):
        default_of(CaptionConfig, "nope")
    with pytest.raises(KeyError, match="sections: tile, embed"):
        section_model("slides")
