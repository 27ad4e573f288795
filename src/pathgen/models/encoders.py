"""Image–text encoders behind one interface: open_clip, Hugging Face CLIP, and a tiny test model.

Selection only needs two things from a model: L2-normalised image embeddings and L2-normalised
text embeddings in the same space, plus the exact image preprocessing the model was trained with.
Each backend owns its preprocessing (callers never hard-code mean/std), and one string names a model:

- ``tiny``: the ``pathgen-tiny`` open_clip config with random weights from a fixed seed, so the
  same spec is the same model on every machine (tests, offline demos);
- ``open_clip:NAME[@CKPT][?quick_gelu=1]``: an open_clip architecture, optionally with a
  ``.pt``/``.pth``/``.bin`` (loaded with ``weights_only=True``) or ``.safetensors`` checkpoint, or a
  pretrained tag of that architecture (a tag trained with QuickGELU, such as ``openai``, gets it
  without ``?quick_gelu=1``; a checkpoint of such weights, e.g. PathGen-CLIP's, needs the option);
- ``hf:ID_OR_DIR``: a Hugging Face ``CLIPModel`` (hub id or local directory);
- a bare local directory: Hugging Face CLIP (``config.json``) or open_clip (``open_clip_config.json``).

A bad spec fails at load time with ``ValueError``/``FileNotFoundError`` saying what would be valid.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

TINY_MODEL = "pathgen-tiny"
TINY_SEED = 20250101
log = logging.getLogger(__name__)
MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"
SPEC_FORMS = (
    "'tiny', 'open_clip:NAME', 'open_clip:NAME@/path/ckpt.(pt|safetensors)', "
    "'open_clip:NAME?quick_gelu=1', 'hf:<hub id or local dir>', or a local model directory"
)


@dataclass
class Encoder:
    """A loaded image–text model; ``encode_*`` return float32 arrays with unit-norm rows."""

    name: str
    model: Any
    preprocess: Callable[[Any], Any]
    tokenizer: Callable[[list[str]], Any]
    image_size: int
    device: Any
    backend: str
    precision: str = "fp32"
    dim: int = 0
    _image_features: Callable[[Any], Any] = field(default=None, repr=False)  # type: ignore[assignment]
    _text_features: Callable[[list[str]], Any] = field(default=None, repr=False)  # type: ignore[assignment]

    def _autocast(self) -> Any:
        """fp16/bf16 through autocast: weights stay fp32, so norms and softmax keep fp32 range
        (``model.half()`` is not safer or, with tensor cores doing the matmuls, much faster)."""
        import torch

        if self.precision in ("fp16", "bf16") and self.device.type in ("cuda", "cpu"):
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def encode_images(self, images: Sequence[Any] | Any, batch_size: int = 64) -> np.ndarray:
        """Embed PIL images (preprocessed here) or an already preprocessed ``(B, 3, H, W)`` tensor."""
        import torch

        if isinstance(images, torch.Tensor):
            batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        else:
            images = list(images)
            batches = [
                torch.stack([self.preprocess(im) for im in images[i : i + batch_size]])
                for i in range(0, len(images), batch_size)
            ]
        out = []
        with torch.inference_mode(), self._autocast():
            for batch in batches:
                feats = self._image_features(batch.to(self.device, non_blocking=True))
                out.append(_normalise(feats))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        import torch

        texts = [str(t) for t in texts]
        out = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(texts), batch_size):
                out.append(_normalise(self._text_features(texts[i : i + batch_size])))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def _normalise(feats: Any) -> np.ndarray:
    arr = feats.float().cpu().numpy()
    norm = np.linalg.norm(arr, axis=1, keepdims=True)
    return (arr / np.maximum(norm, 1e-12)).astype(np.float32)


SELF_RESOLVED = ("local-dir:", "hf-hub:")  # open_clip names whose weights open_clip finds itself


def load_encoder(spec: str, device: str | None = None, precision: str | None = None) -> Encoder:
    """Load the encoder a spec names onto ``device`` (``cuda:1``, ``cpu``; None = cuda when
    available); ``precision`` (fp32, fp16, bf16 autocast) defaults to fp16 on CUDA, fp32 elsewhere."""
    import torch

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty encoder spec; use one of {SPEC_FORMS}")
    spec = spec.strip()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if precision is None:
        precision = "fp16" if dev.type == "cuda" else "fp32"
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")

    if spec == "tiny":
        enc = _load_open_clip(TINY_MODEL, None, False, dev, seed=TINY_SEED)
    elif spec.startswith("open_clip:"):
        name, ckpt, quick_gelu = parse_open_clip_spec(spec)
        enc = _load_open_clip(name, ckpt, quick_gelu, dev)
    elif spec.startswith("hf:"):
        enc = _load_hf(spec[3:], dev)
    elif Path(spec).expanduser().is_dir():
        enc = _load_directory(Path(spec).expanduser(), dev)
    elif os.sep in spec or spec.startswith("."):
        raise FileNotFoundError(f"encoder directory not found: {spec}")
    else:
        raise ValueError(f"unknown encoder spec {spec!r}; use {SPEC_FORMS}")
    enc.name = spec
    enc.precision = precision
    enc.dim = int(enc.encode_texts(["tissue"]).shape[1])
    return enc


def canonical_spec(spec: str) -> str:
    """The spec with any local path made absolute, so a later stage reloads the same model anywhere."""
    spec = spec.strip()
    if spec.startswith("open_clip:"):
        name, ckpt, quick_gelu = parse_open_clip_spec(spec)
        if ckpt and Path(ckpt).expanduser().exists():
            ckpt = str(Path(ckpt).expanduser().resolve())
        out = f"open_clip:{name}" + (f"@{ckpt}" if ckpt else "")
        return out + ("?quick_gelu=1" if quick_gelu else "")
    if spec.startswith("hf:") and Path(spec[3:]).expanduser().exists():
        return "hf:" + str(Path(spec[3:]).expanduser().resolve())
    if spec != "tiny" and Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser().resolve())
    return spec


def parse_open_clip_spec(spec: str) -> tuple[str, str | None, bool]:
    """Split ``open_clip:NAME[@CKPT][?quick_gelu=1]`` into (name, checkpoint or tag, quick_gelu)."""
    body = spec[len("open_clip:") :]
    query: dict[str, list[str]] = {}
    if "?" in body:
        body, qs = body.split("?", 1)
        query = parse_qs(qs, keep_blank_values=True)
        unknown = set(query) - {"quick_gelu"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} in {spec!r}; the only one is quick_gelu")
    name, _, ckpt = body.partition("@")
    if not name:
        raise ValueError(f"no model name in {spec!r}; e.g. 'open_clip:ViT-B-16'")
    flag = (query.get("quick_gelu") or ["0"])[-1].lower()
    return name, (ckpt or None), flag in ("1", "true", "yes", "")


def has_random_weights(spec: str) -> bool:
    """Whether a spec builds a model without trained weights (fine for tests, not for data):
    ``tiny``, or an open_clip architecture with no checkpoint or tag that open_clip does not
    resolve itself (``local-dir:``, ``hf-hub:``)."""
    spec = spec.strip()
    if spec == "tiny":
        return True
    if spec.startswith("open_clip:"):
        name, ckpt, _ = parse_open_clip_spec(spec)
        return ckpt is None and not name.startswith(SELF_RESOLVED)
    return False


def tag_needs_quick_gelu(name: str, tag: str | None) -> bool:
    """Whether open_clip's pretrained weights ``tag`` of ``name`` were trained with QuickGELU.

    Why: OpenAI CLIP (and models fine-tuned from it, such as PathGen-CLIP) use QuickGELU, but the
    plain ``ViT-B-16`` config builds GELU; open_clip 3.x only warns about the mismatch and runs
    every layer with the wrong activation. Its per-tag pretrained config says which (``quick_gelu``).
    A checkpoint path carries no such record: use ``?quick_gelu=1`` (or ``--force-quick-gelu``).
    """
    if not tag or name.startswith(SELF_RESOLVED):
        return False
    import open_clip

    return bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))


def register_model_configs() -> None:
    """Make ``pathgen-tiny`` (and any config beside it) known to open_clip, once per process."""
    import open_clip

    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIGS)


def _load_open_clip(
    name: str, ckpt: str | None, quick_gelu: bool, dev: Any, seed: int | None = None
) -> Encoder:
    import open_clip
    import torch

    register_model_configs()
    self_resolved = name.startswith(SELF_RESOLVED)
    if not self_resolved and name not in open_clip.list_models():
        close = difflib.get_close_matches(name, open_clip.list_models(), n=6, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown open_clip model {name!r}{hint} (`open_clip.list_models()` lists all "
            f"{len(open_clip.list_models())}; append '-quickgelu' or '?quick_gelu=1' for QuickGELU)"
        )
    pretrained_tag, ckpt_path = None, None
    if ckpt:
        path = Path(ckpt).expanduser()
        tags = [] if self_resolved else open_clip.list_pretrained_tags_by_model(name)
        if path.is_file():
            ckpt_path = path
        elif ckpt in tags:
            pretrained_tag = ckpt
        else:
            extra = f" and not a pretrained tag of {name} ({', '.join(tags)})" if tags else ""
            raise FileNotFoundError(f"checkpoint not found: {ckpt}{extra}")
    quick_gelu = quick_gelu or tag_needs_quick_gelu(name, pretrained_tag)
    with torch.random.fork_rng(devices=[]), quiet_no_weights_warning():
        if seed is not None:
            torch.manual_seed(seed)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained_tag, force_quick_gelu=quick_gelu, device="cpu"
            )
        except RuntimeError as exc:
            raise ValueError(f"could not build open_clip model {name!r}: {exc}") from exc
    if ckpt_path is not None:
        _load_checkpoint(model, name, ckpt_path)
    elif pretrained_tag is None and seed is None and not self_resolved:
        log.warning("open_clip model %s has random weights (no checkpoint given)", name)
    model.eval().to(dev)
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    tokenizer = open_clip.get_tokenizer(name)

    def image_features(batch: Any) -> Any:
        return model.encode_image(batch)

    def text_features(texts: list[str]) -> Any:
        return model.encode_text(tokenizer(texts).to(dev))

    return Encoder(
        name=name,
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        image_size=size,
        device=dev,
        backend="open_clip",
        _image_features=image_features,
        _text_features=text_features,
    )


@contextlib.contextmanager
def quiet_no_weights_warning() -> Iterator[None]:
    """Hide open_clip's "No pretrained weights loaded ... initialized randomly" warning.

    Why: we build the bare architecture and load a checkpoint into it right after (strictly), so the
    warning is false and made users think a model (or stage 2 of training) started from scratch.
    """

    def keep(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _load_checkpoint(model: Any, name: str, path: Path) -> None:
    """Load weights safely; a checkpoint of another architecture is a ValueError saying so."""
    from open_clip.factory import load_checkpoint

    try:
        load_checkpoint(model, str(path), strict=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"checkpoint {path} holds pickled objects that weights_only loading refuses; re-save its "
            f"state_dict with torch.save or as .safetensors ({str(exc).splitlines()[0]})"
        ) from exc
    except (RuntimeError, KeyError) as exc:
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[:4] if line.strip())
        raise ValueError(
            f"checkpoint {path} does not match the architecture {name!r}: {detail[:600]}"
        ) from exc
    except Exception as exc:  # a truncated or foreign file: say which file, not a library trace
        raise ValueError(f"could not read checkpoint {path}: {type(exc).__name__}: {exc}") from exc


class _HFPreprocess:
    """PIL -> (3, H, W) tensor through the model's own image processor (picklable for workers)."""

    def __init__(self, image_processor: Any):
        self.image_processor = image_processor

    def __call__(self, image: Any) -> Any:
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]


def _features(out: Any) -> Any:
    """transformers >= 5 returns a model output whose pooler_output is the projected embedding."""
    return out if hasattr(out, "float") else out.pooler_output


def _load_hf(ident: str, dev: Any) -> Encoder:
    from transformers import AutoProcessor, CLIPModel

    if not ident:
        raise ValueError("no model after 'hf:'; e.g. 'hf:openai/clip-vit-base-patch16' or 'hf:/path/dir'")
    local = Path(ident).expanduser()
    if not local.exists() and ident.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"Hugging Face model directory not found: {ident}")
    source = str(local) if local.exists() else ident
    try:
        model = CLIPModel.from_pretrained(source)
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        where = "local directory" if local.exists() else "hub id (must be cached, or the hub reachable)"
        raise ValueError(
            f"could not load Hugging Face CLIP {ident!r} as a {where}: {str(exc).splitlines()[0]}"
        ) from exc
    model.eval().to(dev)
    image_processor = getattr(processor, "image_processor", processor)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        raise ValueError(f"{ident}: its processor has no tokenizer, so texts cannot be embedded")
    crop = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None) or {}
    size = crop.get("height") or crop.get("shortest_edge") or model.config.vision_config.image_size
    max_len = int(model.config.text_config.max_position_embeddings)

    def image_features(batch: Any) -> Any:
        return _features(model.get_image_features(pixel_values=batch))

    def text_features(texts: list[str]) -> Any:
        tok = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        return _features(model.get_text_features(**{k: v.to(dev) for k, v in tok.items()}))

    return Encoder(
        name=ident,
        model=model,
        preprocess=_HFPreprocess(image_processor),
        tokenizer=tokenizer,
        image_size=int(size),
        device=dev,
        backend="hf",
        _image_features=image_features,
        _text_features=text_features,
    )


def _load_directory(path: Path, dev: Any) -> Encoder:
    if (path / "open_clip_config.json").is_file():
        return _load_open_clip(f"local-dir:{path}", None, False, dev)
    if (path / "config.json").is_file():
        return _load_hf(str(path), dev)
    raise ValueError(
        f"{path} is a directory but holds neither config.json (Hugging Face CLIP) nor "
        "open_clip_config.json (open_clip)"
    )
