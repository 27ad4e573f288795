"""`Slide`: one interface over OpenSlide, tiffslide and wsidicom.

A `Slide` is lazy (the file opens on first use), picklable by path and reader (a worker process
re-opens its own handle, since library handles cannot cross processes), closable and a context
manager. ``reader="auto"`` picks the backend by extension and falls back to the next one that can
read the file, so OpenSlide handles SVS/NDPI/MRXS/generic TIFF and wsidicom handles DICOM; forcing
a reader uses only that one. Coordinates are level-0 pixels; regions come back RGB ``uint8``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.slides.backends import BACKENDS, SlideOpenError, sniff
from pathgen.storage import is_url

READERS = ("auto", *BACKENDS)
#: Readers that open a slide from an fsspec URL (``s3://...``): tiffslide reads through fsspec;
#: OpenSlide and wsidicom need a local file.
URL_READERS = ("tiffslide",)
_MAX_THUMB_READ = 64 * 1024 * 1024  # level pixels read at once for a thumbnail
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
SLIDE_EXTENSIONS = frozenset(
    {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".qptiff"}
    | DICOM_EXTENSIONS
)
# Whole-slide formats that none of the readers above opens. A folder scan lists these files as
# 'skipped' rows with the reason instead of passing over them, so that a folder of .czi files does
# not look like a folder without slides. Other files (.txt, .csv, .png, ...) are not slides and are
# not listed: every folder has some, and a row each would bury the real problems.
UNSUPPORTED_FORMATS = {
    ".czi": "Zeiss CZI",
    ".zvi": "Zeiss ZVI",
    ".vsi": "Olympus/Evident VSI",
    ".isyntax": "Philips iSyntax",
    ".lif": "Leica LIF",
    ".kfb": "KFBio KFB",
    ".sdpc": "SQRAY SDPC",
    ".tmap": "UNIC TMAP",
    ".mds": "Motic MDS",
    ".mdsx": "Motic MDSX",
    ".ndpis": "Hamamatsu NDPIS (a list of .ndpi channel files)",
}


def unsupported_reason(path: str | os.PathLike[str]) -> str | None:
    """Why no reader can open ``path`` judging by its extension, or None when one may."""
    ext = Path(path).suffix.lower()
    name = UNSUPPORTED_FORMATS.get(ext)
    if name is None:
        return None
    return (
        f"unsupported format: {name} ({ext}); none of the readers ({', '.join(BACKENDS)}) opens it. "
        "Convert it to a pyramidal (OME-)TIFF first, e.g. with bfconvert or QuPath"
    )


def _candidates(path: str, reader: str) -> list[str]:
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; valid readers: {', '.join(READERS)}")
    if is_url(path):
        if reader not in ("auto", *URL_READERS):
            raise ValueError(url_reader_error(reader, path))
        ext = Path(path.split("?", 1)[0]).suffix.lower()
        if ext in DICOM_EXTENSIONS:
            raise ValueError(
                f"DICOM slides cannot be read from a URL ({path}): wsidicom needs a local file; "
                "copy the slide to a local or shared filesystem"
            )
        return list(URL_READERS)
    if reader != "auto":
        return [reader]
    ext = Path(path).suffix.lower()
    if ext in DICOM_EXTENSIONS or os.path.isdir(path):
        return ["wsidicom"]
    return ["openslide", "tiffslide"]


def url_reader_error(reader: str, path: str) -> str:
    """The message for a reader that cannot read a slide from a URL."""
    return (
        f"reader {reader!r} cannot read slides from a URL ({path}): only {', '.join(URL_READERS)} "
        "reads through fsspec (OpenSlide and wsidicom need a local file); use reader 'auto' or "
        "'tiffslide', or copy the slides to a local or shared filesystem"
    )


class Slide:
    """A whole-slide image, opened on first use.

    Attributes are read from the file lazily; ``reader`` is the backend that actually opened it
    (after ``auto`` resolution) once opened, or the requested one before.
    """

    def __init__(self, path: str | os.PathLike[str], reader: str = "auto", slide_id: str | None = None):
        self.path = str(path)
        self.requested_reader = reader
        self.slide_id = slide_id or Path(self.path).stem
        _candidates(self.path, reader)  # fail fast on an unknown reader name
        self._backend: Any = None
        self.open_warning: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> Slide:
        if self._backend is not None:
            return self
        problem = sniff(self.path)
        if problem is not None:
            raise SlideOpenError(problem)
        errors: list[str] = []
        for name in _candidates(self.path, self.requested_reader):
            try:
                self._backend = BACKENDS[name](self.path)
                if errors:  # a fallback reader opened what the preferred one refused: say so
                    self.open_warning = f"opened with {name} after {'; '.join(errors)}"
                return self
            except SlideOpenError as exc:
                errors.append(f"{name}: {exc}")
            except ImportError as exc:
                errors.append(f"{name}: not installed ({exc})")
            except Exception as exc:  # a corrupt file can fail anywhere inside a library
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        raise SlideOpenError("; ".join(errors))

    @property
    def backend(self) -> Any:
        return self.open()._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Slide:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "requested_reader": self.resolved_reader, "slide_id": self.slide_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self.requested_reader = state["requested_reader"]
        self.slide_id = state["slide_id"]
        self._backend = None
        self.open_warning = None

    def __repr__(self) -> str:
        return f"Slide({self.path!r}, reader={self.resolved_reader!r})"

    # -- properties ------------------------------------------------------------------------
    @property
    def resolved_reader(self) -> str:
        return self._backend.name if self._backend is not None else self.requested_reader

    @property
    def reader(self) -> str:
        return self.backend.name

    @property
    def vendor(self) -> str:
        return self.backend.vendor

    @property
    def mpp(self) -> float | None:
        return self.backend.mpp

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.backend.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.backend.level_dimensions)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self.backend.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self.backend.level_downsamples

    # -- pixels ----------------------------------------------------------------------------
    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 array (h, w, 3) of ``size`` level pixels; ``location`` in level-0 pixels."""
        if not 0 <= level < self.level_count:
            raise ValueError(f"level {level} out of range: {self.path} has {self.level_count} levels")
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"region size must be positive, got {size}")
        return self.backend.read_region((int(location[0]), int(location[1])), level, (w, h))

    def best_level_for_downsample(self, downsample: float, tolerance: float = 0.01) -> int:
        """The coarsest level whose downsample does not exceed ``downsample`` (within tolerance)."""
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + tolerance):
                best = i if ds >= self.level_downsamples[best] else best
        return best

    def get_thumbnail(self, size: tuple[int, int]) -> Any:
        """PIL RGB image fitting in ``size``, read from the best level then area-resized."""
        from PIL import Image

        arr = self.thumbnail_array(max(self.dimensions[0] / size[0], self.dimensions[1] / size[1]))
        return Image.fromarray(arr)

    def thumbnail_array(self, downsample: float) -> np.ndarray:
        """The whole slide at ``downsample`` as an RGB array (used by the tissue mask)."""
        import cv2

        width, height = self.dimensions
        downsample = max(float(downsample), 1.0)
        out_w, out_h = max(1, round(width / downsample)), max(1, round(height / downsample))
        level = self.best_level_for_downsample(downsample)
        lw, lh = self.level_dimensions[level]
        if lw * lh <= _MAX_THUMB_READ:
            arr = self.read_region((0, 0), level, (lw, lh))
            if (lw, lh) != (out_w, out_h):
                arr = cv2.resize(arr, (out_w, out_h), interpolation=cv2.INTER_AREA)
            return arr
        # A slide without a coarse level: read in row bands so memory stays bounded.
        out = np.empty((out_h, out_w, 3), dtype=np.uint8)
        ds = self.level_downsamples[level]
        band = max(1, _MAX_THUMB_READ // lw)
        for r0 in range(0, lh, band):
            r1 = min(lh, r0 + band)
            o0, o1 = round(r0 * out_h / lh), round(r1 * out_h / lh)
            if o1 <= o0:
                continue
            chunk = self.read_region((0, round(r0 * ds)), level, (lw, r1 - r0))
            out[o0:o1] = cv2.resize(chunk, (out_w, o1 - o0), interpolation=cv2.INTER_AREA)
        return out


def open_slide(
    path: str | os.PathLike[str] | Slide, reader: str = "auto", slide_id: str | None = None
) -> Slide:
    """A lazy `Slide` for ``path`` (returned unchanged when it already is one)."""
    if isinstance(path, Slide):
        return path
    return Slide(path, reader=reader, slide_id=slide_id)
