"""One small adapter per slide library (OpenSlide, tiffslide, wsidicom) behind the same methods.

Each backend opens one file and answers: level geometry, mpp from the file's own metadata (or
None; never a guess), vendor, and ``read_region`` as an RGB ``uint8`` array. Transparent areas
(outside the scanned region, or outside the image) come back white, like a glass slide's background,
so tissue masks and encoders see the same thing whichever library read the pixels.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import numpy as np


class SlideOpenError(RuntimeError):
    """A file could not be opened as a slide; the message says why, for the user."""


def _rgba_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Composite RGBA on white; fast path when the region is fully opaque (the common case)."""
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 3:
        return arr
    rgb, alpha = arr[..., :3], arr[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a)) // 255
    return out.astype(np.uint8)


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) and out > 0 else None


def _mpp_from_properties(props: Any, prefix: str) -> float | None:
    """mpp from the vendor's own key, else from TIFF resolution tags when given in centimetres.

    Inch-based TIFF resolutions are ignored: scanners often write a meaningless 72 dpi there.
    """
    mpp = _float(props.get(f"{prefix}.mpp-x"))
    if mpp is not None:
        return mpp
    mpp = _float(props.get("aperio.MPP"))
    if mpp is not None:
        return mpp
    unit = str(props.get("tiff.ResolutionUnit", "")).lower()
    res = _float(props.get("tiff.XResolution"))
    if res is not None and unit in {"centimeter", "cm", "3"}:
        return 10000.0 / res
    return None


# Formats whose levels are plain TIFF pages, read by pathgen.slides.tiffread (decode only) when
# possible; OpenSlide still opens them, provides metadata and reads anything unusual.
FAST_TIFF_VENDORS = frozenset({"aperio", "generic-tiff"})


class OpenSlideBackend:
    """OpenSlide through openslide-bin: Aperio, Hamamatsu, MIRAX, Leica, generic tiled TIFF, ..."""

    name = "openslide"

    def __init__(self, path: str):
        import openslide

        try:
            self._slide = openslide.OpenSlide(path)
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise SlideOpenError(f"OpenSlide does not recognise the format ({exc})") from exc
        except openslide.OpenSlideError as exc:
            raise SlideOpenError(f"OpenSlide could not read the file: {exc}") from exc
        props = self._slide.properties
        self.vendor = str(props.get("openslide.vendor") or "unknown")
        self.mpp = _mpp_from_properties(props, "openslide")
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in self._slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._slide.level_downsamples)
        self._fast = None
        if self.vendor in FAST_TIFF_VENDORS:
            from pathgen.slides.tiffread import open_tiled_tiff

            self._fast = open_tiled_tiff(path, self.level_dimensions)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        if self._fast is not None and self._fast.has_level(level):
            ds = self.level_downsamples[level]
            x, y = int(location[0] / ds), int(location[1] / ds)  # OpenSlide truncates the same way
            return self._fast.read(level, x, y, size[0], size[1])
        img = self._slide.read_region(location, level, size)
        return _rgba_to_rgb(np.asarray(img))

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._slide.close()


class TiffSlideBackend:
    """tiffslide: pure Python (tifffile + imagecodecs), reads SVS and generic pyramidal TIFF."""

    name = "tiffslide"

    def __init__(self, path: str):
        import tiffslide

        try:
            self._slide = tiffslide.TiffSlide(path)
        except Exception as exc:  # tifffile raises many types for a bad file
            raise SlideOpenError(f"tiffslide could not read the file: {exc}") from exc
        props = self._slide.properties
        self.vendor = str(props.get("tiffslide.vendor") or "unknown")
        self.mpp = _mpp_from_properties(props, "tiffslide")
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in self._slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._slide.level_downsamples)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        arr = self._slide.read_region(location, level, size, as_array=True)
        return _rgba_to_rgb(np.asarray(arr, dtype=np.uint8))

    def close(self) -> None:
        self._slide.close()


class WsiDicomBackend:
    """wsidicom: DICOM VL Whole Slide Microscopy images (a file, or a folder of one series)."""

    name = "wsidicom"

    def __init__(self, path: str):
        from wsidicom import WsiDicom

        try:
            self._slide = WsiDicom.open(path)
        except Exception as exc:
            raise SlideOpenError(_explain_dicom_failure(path, exc)) from exc
        base = self._slide.size
        self._levels = list(self._slide.levels)
        self.level_dimensions = tuple((int(lv.size.width), int(lv.size.height)) for lv in self._levels)
        self.level_downsamples = tuple(base.width / lv.size.width for lv in self._levels)
        try:
            self.mpp = _float(self._slide.mpp.width)
        except Exception:  # WsiDicomNoResolutionError: no PixelSpacing in the file
            self.mpp = None
        self.vendor = "dicom"

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Read at level coordinates, clipped to the image and padded white (wsidicom refuses overflow)."""
        ds = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        x, y = round(location[0] / ds), round(location[1] / ds)
        w, h = size
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
        if x1 > x0 and y1 > y0:
            arr = self._slide.read_region(
                (x0, y0), self._levels[level].level, (x1 - x0, y1 - y0), as_array=True
            )
            out[y0 - y : y1 - y, x0 - x : x1 - x] = _rgba_to_rgb(np.asarray(arr, dtype=np.uint8))
        return out

    def close(self) -> None:
        self._slide.close()


def _explain_dicom_failure(path: str, exc: Exception) -> str:
    """Say *why* wsidicom refused a file, in terms of the DICOM attributes it needs."""
    missing: list[str] = []
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "ImageType" not in ds:
            missing.append("ImageType (0008,0008), which marks a VOLUME level")
        elif "VOLUME" not in list(ds.ImageType):
            missing.append(f"a VOLUME ImageType (it is {list(ds.ImageType)})")
        if "SharedFunctionalGroupsSequence" not in ds:
            missing.append("SharedFunctionalGroupsSequence (pixel spacing)")
        if "DimensionOrganizationType" not in ds:
            missing.append("DimensionOrganizationType (tile order)")
    except Exception as inner:
        return f"not a readable DICOM file ({type(exc).__name__}: {exc}; pydicom: {inner})"
    if not missing:
        return f"wsidicom could not read this DICOM file: {type(exc).__name__}: {exc}"
    return (
        f"wsidicom found no whole-slide level ({exc}): the file lacks {'; '.join(missing)}, so it is not "
        "a conformant DICOM WSI (OpenSlide refuses it too)"
    )


BACKENDS: dict[str, type] = {
    "openslide": OpenSlideBackend,
    "tiffslide": TiffSlideBackend,
    "wsidicom": WsiDicomBackend,
}


def stat_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be reached at all (missing, a symlink loop, a dangling link), else None.

    ``Path.exists()`` answers False for all of these, which made a symlink loop look like a
    missing file; the user needs to know which one it is to fix it.
    """
    try:
        os.stat(path)
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: the path's symbolic links point at each other in a circle"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                return f"broken symlink: it points to {os.readlink(path)}, which does not exist"
            return "file not found"
        return f"cannot access the file: {exc.strerror or exc}"


def _mirax_problem(path: str) -> str | None:
    """A MIRAX ``X.mrxs`` is only an index: its pixels are in the folder ``X/`` next to it."""
    folder = os.path.splitext(path)[0]
    if os.path.isdir(folder):
        return None
    name = os.path.basename(folder)
    return (
        f"MIRAX slide without its data folder: {os.path.basename(path)} needs the folder {name}/ "
        "(Slidedat.ini, Index.dat, Data*.dat) beside it, and there is none; copy the folder with the file"
    )


def sniff(path: str) -> str | None:
    """Reject files that are plainly not slides, with a message better than a library's.

    Returns an error message, or None when the file may be a slide.
    """
    from pathgen.storage import is_url

    if is_url(path):
        return _sniff_url(path)
    problem = stat_problem(path)
    if problem is not None:
        return problem
    if os.path.isdir(path):
        return None  # a DICOM series folder or MIRAX data dir is checked by the backend
    size = os.path.getsize(path)
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(132)
    return _sniff_head(path, size, head)


def _sniff_url(url: str) -> str | None:
    """:func:`sniff` for an object in storage: its size and first bytes, read through fsspec."""
    from pathgen.storage import head as read_head
    from pathgen.storage import url_problem

    problem = url_problem(url)
    if problem is not None:
        return problem
    try:
        size, first = read_head(url, 132)
    except Exception as exc:
        return f"cannot read the object: {type(exc).__name__}: {exc}"
    if size == 0:
        return "empty file (0 bytes)"
    return _sniff_head(url.split("?", 1)[0], size, first)


def _sniff_head(path: str, size: int, head: bytes) -> str | None:
    """The checks of :func:`sniff` on a file's size and first 132 bytes."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mrxs":
        mirax = _mirax_problem(path)
        if mirax is not None:
            return mirax
    kinds = {
        b"\x89PNG": "a PNG image",
        b"\xff\xd8\xff": "a JPEG image",
        b"GIF8": "a GIF image",
        b"%PDF": "a PDF document",
        b"PK\x03\x04": "a ZIP archive",
    }
    for magic, kind in kinds.items():
        if head.startswith(magic):
            return f"file is {kind}, not a whole-slide image (its extension {ext or '(none)'} is wrong)"
    is_tiff = head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    if is_tiff:
        order = "little" if head[:2] == b"II" else "big"
        big = head[2:4] in (b"+\x00", b"\x00+")
        first_ifd = int.from_bytes(head[8:16] if big else head[4:8], order)
        if first_ifd >= size:
            return (
                f"truncated or corrupt TIFF: its first image directory is at byte {first_ifd} "
                f"but the file has only {size} bytes"
            )
    is_dicom = len(head) >= 132 and head[128:132] == b"DICM"
    if ext in {".svs", ".tif", ".tiff", ".ndpi", ".scn", ".bif", ".svslide", ".qptiff"} and not is_tiff:
        if is_dicom:
            return None
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / max(len(head), 1)
        kind = "a text file" if printable > 0.95 else f"not a TIFF file (header {head[:8]!r})"
        return f"file is {kind}, not a whole-slide image (its extension {ext} is wrong)"
    return None
