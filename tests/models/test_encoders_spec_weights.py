"""Which encoder specs build a model without trained weights: the CLI warns on exactly these."""

from __future__ import annotations

import pytest

from pathgen.models.encoders import has_random_weights


@pytest.mark.parametrize(
    "spec, random",
    [
        ("tiny", True),
        ("open_clip:ViT-B-16", True),
        ("open_clip:ViT-B-16?quick_gelu=1", True),
        ("open_clip:ViT-B-16@openai", False),
        ("open_clip:ViT-B-16@/models/pathgen-clip.pt", False),
        ("open_clip:local-dir:/models/pathgen-clip", False),
        ("open_clip:hf-hub:org/model", False),
        ("hf:openai/clip-vit-base-patch16", False),
        ("/models/pathgen-clip-b16", False),
    ],
)
def test_random_weight_specs(spec, random):
    assert has_random_weights(spec) is random
