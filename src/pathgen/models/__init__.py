"""Models: image–text encoders and text generators, each named by one spec string.

Imports are lazy (functions, not module-level imports) so that `import pathgen.models` never
pulls torch, open_clip or transformers.
"""

from __future__ import annotations

from typing import Any


def load_encoder(spec: str, device: str | None = None, precision: str | None = None) -> Any:
    """Load an image–text encoder; see :mod:`pathgen.models.encoders` for the spec forms."""
    from pathgen.models.encoders import load_encoder as _load_encoder

    return _load_encoder(spec, device=device, precision=precision)


def load_generator(spec: str, **kwargs: Any) -> Any:
    """Load a text generator (VLM); see :mod:`pathgen.models.generators` for the spec forms."""
    from pathgen.models.generators import load_generator as _load_generator

    return _load_generator(spec, **kwargs)
