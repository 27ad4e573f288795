"""Helpers for the export tests: caption records and pairs built from real H&E patches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from pathgen.export.records import build_meta
from pathgen.export.writer import Pair

CAPTIONS = [
    "Dense sheets of atypical epithelial cells with enlarged hyperchromatic nuclei form irregular glands.",
    "Mature adipocytes with thin fibrous septa and scattered small vessels, no atypia.",
    "Lymphocytes densely packed in sheets with scant cytoplasm and round dark nuclei.",
    "Pools of extracellular mucin with floating strips of epithelium and few inflammatory cells.",
]


def caption_record(slide_id: str, x: int, y: int, size: int = 672, i: int = 0, **over: Any) -> dict[str, Any]:
    """A record shaped like ``pathgen.agents.results.load_caption_records`` returns."""
    rec = {
        "tile_id": f"{slide_id}:{x}:{y}:{size}",
        "slide_id": slide_id,
        "x": x,
        "y": y,
        "size": size,
        "caption": CAPTIONS[i % len(CAPTIONS)],
        "description": "Long description. " + CAPTIONS[i % len(CAPTIONS)],
        "revision": {
            "edits": [{"type": "modification", "before": "glands", "after": "gland-like structures"}]
            if i % 2 == 0
            else [],
            "revised": "Revised description. " + CAPTIONS[i % len(CAPTIONS)],
        },
        "status": "ok",
        "flags": [],
        "models": {"describe": "tiny", "revise": "tiny", "summarize": "tiny"},
        "prompt_versions": {"describe": "v1", "revise": "v1", "summarize": "v1"},
    }
    rec.update(over)
    return rec


def crc_pairs(crc_dir: Path, n: int = 12, image_size: int = 224) -> list[Pair]:
    """``n`` pairs of real CRC patches with pathgen metadata (two fake slides, two projects)."""
    files = sorted(crc_dir.rglob("*.png"))[:n]
    pairs = []
    for i, f in enumerate(files):
        slide_id = f"TCGA-AA-000{i % 2}-01Z-00-DX1.ABCDEF"
        slide = {"mpp": 0.5, "project": ["TCGA-COAD", "TCGA-READ"][i % 2], "file_id": f"file-{i % 2}"}
        rec = caption_record(slide_id, 672 * i, 0, i=i)
        rec["caption"] = f"{rec['caption']} Patch number {i}."
        image = Image.open(f).convert("RGB").resize((image_size, image_size))
        pairs.append(Pair(meta=build_meta(rec, slide, image_size), image=image))
    return pairs


def captioned_run(root: Path, slide: Path | list[Path], n_tiles: int = 8, size: int = 224) -> Any:
    """A real run over ``n_tiles`` tiles of each slide, captioned through the fake OpenAI server."""
    from pathgen.agents.stage import caption_stage
    from pathgen.config import CaptionConfig
    from pathgen.engine.fakeserver import FakeServer
    from pathgen.rundir import RunDir, write_parquet

    run = RunDir(root).ensure()
    slides = slide if isinstance(slide, list) else [slide]
    rows = [{"slide_id": s.stem, "path": str(s), "vendor": "aperio", "status": "ok"} for s in slides]
    write_parquet(rows, run.slides)
    tiles = []
    for s in slides:
        for i in range(n_tiles):
            x, y = (i % 9) * size, (i // 9) * size + 448
            tiles.append(
                {"tile_id": f"{s.stem}:{x}:{y}:{size}", "slide_id": s.stem, "x": x, "y": y, "size": size}
                | {"reason": "cluster", "score": 0.5, "cluster": 0, "prompt": None}
            )
    write_parquet(tiles, run.selected)
    with FakeServer() as server:
        cfg = CaptionConfig(model="fake-vlm", base_url=server.base_url, image_size=96, backoff_s=0.01)
        summary = caption_stage(run, cfg, progress=False)
    assert summary["done"] == len(tiles), summary
    return run
