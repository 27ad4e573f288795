"""Process entry point: ``python -m pathgen.train.launch ARGS`` (or under torchrun).

It registers pathgen's model configs (``pathgen-tiny``) with open_clip in the training process
itself, then hands ``ARGS`` unchanged to ``open_clip_train.main.main``: pathgen never re-implements
the training loop.
"""

from __future__ import annotations

import logging
import os
import sys

CONFIGS_ENV = "PATHGEN_MODEL_CONFIGS"


def register_extra_configs(paths: list[str] | None = None) -> None:
    """Register model-config JSON files named in ``$PATHGEN_MODEL_CONFIGS`` (os.pathsep-separated)."""
    import open_clip

    for path in paths if paths is not None else os.environ.get(CONFIGS_ENV, "").split(os.pathsep):
        if path:
            open_clip.add_model_config(path)


def main(argv: list[str] | None = None) -> int:
    from open_clip_train.main import main as open_clip_main

    from pathgen.models.encoders import register_model_configs

    register_model_configs()
    register_extra_configs()
    code = open_clip_main(list(sys.argv[1:] if argv is None else argv))
    # open_clip_train sets every logger that exists to INFO; torch's would then dump their (empty)
    # compile statistics into the user's log at exit.
    for name in list(logging.root.manager.loggerDict):
        if name == "torch" or name.startswith("torch."):
            logging.getLogger(name).setLevel(logging.WARNING)
    return int(code) if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
