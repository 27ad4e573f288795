"""Write a Hugging Face model folder the way every pathgen output is written.

``save_pretrained`` writes in place and, through safetensors, creates weight files with mode 0600
whatever the umask: a model a lab shares on a group filesystem would be unreadable to the group,
and a crash mid-save would leave a folder that half loads. Both model-writing commands (`agents
train`, `assistant train`) save through :func:`save_hf_folder` instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pathgen.rundir import dir_mode, file_mode


def save_hf_folder(model: Any, processor: Any, out: Path) -> None:
    """Save ``model`` and ``processor`` into ``out``: written beside it, given the modes the umask
    allows, then moved in file by file (each file is replaced in one rename, so a reader never
    loads a half-written weight file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for root, dirs, files in os.walk(tmp):
            os.chmod(root, dir_mode())
            for name in dirs:
                os.chmod(os.path.join(root, name), dir_mode())
            for name in files:
                os.chmod(os.path.join(root, name), file_mode())
        for path in sorted(tmp.iterdir()):
            target = out / path.name
            if path.is_dir():
                if target.exists():
                    shutil.rmtree(target)
                os.rename(path, target)
            else:
                os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
