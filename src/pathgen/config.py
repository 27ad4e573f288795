"""Configuration of every stage, as pydantic models; YAML in and out.

Defaults are the published PathGen-1.6M method, so an empty config reproduces the paper's
choices. A config is validated before any work starts (unknown keys are errors: a typo must not
silently fall back to a default), and the resolved config, every default written out, is saved
beside the run's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pathgen.sample_data import is_sample_spec
from pathgen.selection.choices import ClusterCount, ClusterPick, FindingScore


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TileConfig(_Section):
    """Tissue tiling: 672-px level-0 patches on a non-overlapping grid, kept at >= 50 % tissue."""

    size: int = Field(672, gt=0, description="tile side in pixels (level 0, or at `mpp` when set)")
    mpp: float | None = Field(
        None, gt=0, description="physical resolution of `size` in µm/px; None means level-0 pixels"
    )
    assume_mpp: float | None = Field(
        None, gt=0, description="mpp to use for slides whose metadata has none (never guessed silently)"
    )
    min_tissue: float = Field(0.5, ge=0, le=1, description="minimum tissue fraction of a kept tile")
    thumbnail_downsample: float = Field(32.0, gt=1, description="downsample of the tissue-mask thumbnail")
    reader: Literal["auto", "openslide", "tiffslide", "wsidicom"] = "auto"
    workers: int = Field(0, ge=0, description="slide processes; 0 = number of CPUs, at most 8")
    allow_non_brightfield: bool = Field(
        False, description="tile slides with a dark (fluorescence-like) background instead of skipping them"
    )


class EmbedConfig(_Section):
    """Embedding every tile with a pathology CLIP image encoder (ViT-L/14 at 336 px, as published)."""

    encoder: str = Field("tiny", description="model spec, e.g. 'open_clip:ViT-L-14-336@ckpt.pt', 'tiny'")
    batch_size: int = Field(64, gt=0)
    workers: int = Field(2, ge=0, description="DataLoader workers reading tiles, per device")
    device: str | None = Field(None, description="'cuda', 'cpu', ...; None picks cuda when available")
    devices: list[str] = Field(
        default_factory=list,
        description="one encoder per device: ['cuda:0', 'cuda:1'], 'cuda:0,cuda:1', 'all' (every GPU) or "
        "['cpu', 'cpu'] (two CPU replicas); empty = `device` alone; when set it replaces `device`",
    )
    precision: Literal["fp16", "bf16", "fp32"] | None = Field(
        None, description="autocast precision of the encoder; None = fp16 on CUDA, fp32 on CPU"
    )
    actors: int | None = Field(
        None,
        gt=0,
        description="encoder actors under the Ray executor; None = one per GPU of the cluster "
        "(on a cluster without GPUs, one per 2 CPUs)",
    )

    @field_validator("devices", mode="before")
    @classmethod
    def _split_devices(cls, value: Any) -> Any:
        """'cuda:0,cuda:1' (the CLI's and a YAML string's form) is the list of its parts."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            value = [str(v).strip() for v in value]
            if any(not v for v in value):
                raise ValueError("an empty device name in `devices`; e.g. 'cuda:0,cuda:1' or 'all'")
            if "all" in value and len(value) > 1:
                raise ValueError("'all' stands alone in `devices` (it means every GPU of this machine)")
        return value


class SelectConfig(_Section):
    """Representative patches: prompt retrieval, then k-means diversity, then near-duplicate removal."""

    top_k_attribute: int = Field(64, ge=0)
    top_k_finding: int = Field(64, ge=0)
    per_slide_cap: int = Field(256, gt=0)
    clusters: int | None = Field(None, gt=0, description="k of k-means; None = the `cluster_count` rule")
    cluster_count: ClusterCount = Field(
        "sqrt",
        description="k when `clusters` is unset: 'sqrt' = ceil(sqrt(n)) (paper); 'official' = the released "
        "script's ceil(sqrt(1.6 * ceil(n / 128)))",
    )
    cluster_pick: ClusterPick = Field(
        "random",
        description="order within a k-means cluster: 'random' (seeded; official script) or 'nearest' "
        "(closest to the centroid first)",
    )
    finding_score: FindingScore = Field(
        "sum",
        description="a tile's report score: 'sum' of its cosines over all findings (official script) or "
        "the 'max' over them",
    )
    dedup_threshold: float = Field(
        0.88, gt=0, le=1, description="cosine at or above which tiles are duplicates"
    )
    dedup_faiss_above: int | None = Field(
        None,
        ge=1,
        description="selected tiles from which the run-wide near-duplicate pass searches with faiss "
        "(when installed: the `faiss` extra); None = numpy always (faster on 2 cores: benchmarks/dedup.py)",
    )
    prompts: Path | None = Field(None, description="YAML/JSON file adding or replacing attribute prompts")
    replace_prompts: bool = False
    seed: int = 0


class AgentConfig(_Section):
    """One agent's model and sampling; unset fields inherit from `CaptionConfig`."""

    model: str | None = None
    base_url: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    prompt_version: str | None = None


class RayVLLMConfig(_Section):
    """``caption.engine: ray-vllm``: the VLM runs in the cluster through Ray Data LLM's vLLM processor."""

    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="vLLM engine arguments (max_model_len, tensor_parallel_size, ...)"
    )
    batch_size: int = Field(32, gt=0, description="rows per batch sent to a vLLM engine")
    replicas: int = Field(1, gt=0, description="vLLM engine replicas (one per GPU, or per tp group)")
    accelerator_type: str | None = Field(None, description="GPU type the engines need, e.g. 'A100'")
    chunk_tiles: int = Field(4096, gt=0, description="tiles per round of passes (bounds driver memory)")


class CaptionConfig(_Section):
    """The describe -> revise -> summarize chain and the engine that drives it."""

    # A rejected value may be a key typed where a variable's name belongs: never echo inputs.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    model: str = Field("tiny", description="generator spec shared by all agents unless overridden")
    base_url: str | list[str] | None = Field(None, description="OpenAI-compatible base URL(s), round-robin")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    image_size: int = Field(672, gt=0, description="side of the JPEG sent to the model")
    temperature: float = 0.2
    top_p: float = 0.9
    max_tokens: int = 512
    seed: int | None = 0
    extra_body: dict[str, Any] = Field(default_factory=dict)
    structured_output: Literal["auto", "on", "off"] = Field(
        "auto",
        description="ask servers to enforce the revise JSON schema (response_format); auto: until a "
        "server rejects it, then prompt-only for that server",
    )
    transport: Literal["auto", "native", "aiohttp"] = Field(
        "auto", description="HTTP client: native (lean, default) or aiohttp (chosen when a proxy applies)"
    )
    concurrency: int = Field(64, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)
    max_reasks: int = Field(2, ge=0, description="re-asks after an output check fails")
    backoff_s: float = Field(0.5, ge=0, description="base of the exponential backoff between retries")
    backoff_max_s: float = Field(
        30.0, ge=0, description="cap of one backoff wait (Retry-After may exceed it)"
    )
    price_in_per_mtok: float = Field(
        0.0, ge=0, description="prompt price per million tokens (dry-run estimate)"
    )
    price_out_per_mtok: float = Field(0.0, ge=0, description="completion price per million tokens (dry-run)")
    context_length: int = Field(77, gt=0, description="CLIP token budget of a caption")
    stop_grace_s: float = Field(
        30.0, ge=0, description="on Ctrl-C/SIGTERM: seconds to wait for the calls in flight (already paid)"
    )
    ray_workers: int | None = Field(
        None, ge=1, description="caption workers with --executor ray; None = one per base URL (at least 1)"
    )
    engine: Literal["server", "ray-vllm"] = Field(
        "server", description="'server': OpenAI-compatible servers; 'ray-vllm': vLLM inside Ray Data (GPUs)"
    )
    ray_vllm: RayVLLMConfig = Field(default_factory=RayVLLMConfig)
    describe: AgentConfig = Field(default_factory=AgentConfig)
    revise: AgentConfig = Field(default_factory=AgentConfig)
    summarize: AgentConfig = Field(default_factory=AgentConfig)

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        from pathgen.redact import looks_like_secret

        if value is not None and looks_like_secret(value):
            raise ValueError(
                "api_key_env takes the NAME of an environment variable holding the key (e.g. "
                "OPENAI_API_KEY), and the value given looks like a key itself (not shown): export the "
                "key in a variable and pass its name; consider the key exposed (shell history) and rotate it"
            )
        return value


class ExportConfig(_Section):
    """The dataset: PathGen json, webdataset shards, parquet index, card, gallery."""

    image_size: int = Field(672, gt=0)
    jpeg_quality: int = Field(95, ge=1, le=100)
    samples_per_shard: int = Field(1000, gt=0)
    gallery_page_size: int = Field(48, gt=0)
    gallery_max_items: int = Field(
        1000, ge=0, description="thumbnails embedded in gallery.html (spread evenly)"
    )
    workers: int = Field(
        0, ge=0, description="shards written at once by the local executor (threads); 0 = CPUs, at most 8"
    )
    drop_flags: list[str] = Field(
        default_factory=list, description="audit flags whose pairs are left out (RUN/audit/flags.parquet)"
    )

    @field_validator("drop_flags", mode="before")
    @classmethod
    def _known_flags(cls, value: Any) -> Any:
        """``blur,pen`` or a list; every name must be an audit flag (a typo must not drop nothing)."""
        from pathgen.audit.flags import check_flags

        names = value.split(",") if isinstance(value, str) else value
        return check_flags(names) if isinstance(names, list | tuple) else names

    upload_to: str | None = Field(
        None,
        description="fsspec URL (s3://bucket/prefix) the finished export is uploaded to; credentials "
        "and endpoint come from the environment (AWS_*), never from the config",
    )

    @field_validator("upload_to")
    @classmethod
    def _a_url_without_credentials(cls, value: str | None) -> str | None:
        from pathgen.storage import check_url, is_url

        if value is None or not value.strip():
            return None
        if not is_url(value):
            raise ValueError(f"upload_to must be a URL such as s3://bucket/prefix, got {value!r}")
        return check_url(value.strip())


REFUSAL_PHRASES = (
    "i'm sorry", "i am sorry", "i cannot", "i can't", "as an ai", "unable to provide",
    "unable to determine", "cannot be determined", "not possible to determine", "i apologize",
    "language model", "without further information", "please consult", "lorem ipsum",
)  # fmt: skip


class AuditConfig(_Section):
    """`pathgen audit`: the thresholds that turn per-pair measures into flags (RUN/audit/)."""

    encoder: str | None = Field(
        None, description="image-caption encoder spec for alignment; None = the run's embed encoder"
    )
    analysis_size: int = Field(512, gt=31, description="side patches are resized to before measuring")
    blur_max_laplacian_var: float = Field(
        100.0, ge=0, description="blur: variance of the Laplacian (grey, tissue pixels) below this"
    )
    pen_max_fraction: float = Field(
        0.02, ge=0, le=1, description="pen: share of marker-ink pixels above this"
    )
    background_max_fraction: float = Field(
        0.5, ge=0, le=1, description="background: share of bright unsaturated pixels above this"
    )
    fold_max_dark_fraction: float = Field(
        0.15, ge=0, le=1, description="fold: share of very dark pixels above this"
    )
    jpeg_max_blockiness: float = Field(
        1.6, gt=0, description="jpeg: 8x8-grid jump / in-block jump above this (1 = no blocking)"
    )
    misaligned_fraction: float = Field(
        0.05, ge=0, le=1, description="misaligned: this share of pairs with the lowest alignment score"
    )
    near_duplicate_jaccard: float = Field(
        0.8, gt=0, le=1, description="near_duplicate: word 3-gram Jaccard of two captions at least this"
    )
    min_words: int = Field(15, ge=0, description="short: captions with fewer words")
    max_tokens: int = Field(77, gt=0, description="long: captions with more CLIP tokens")
    refusal_phrases: list[str] = Field(
        default_factory=lambda: list(REFUSAL_PHRASES), description="refusal: phrases (case-insensitive)"
    )
    probe_folds: int = Field(5, ge=2, description="cross-validation folds of the site-leakage probe")
    probe_max_pairs: int = Field(20000, gt=1, description="TCGA pairs (random sample) the site probe uses")
    examples: int = Field(8, ge=0, description="example patches per flag in report.html")
    batch_size: int = Field(32, gt=0, description="pairs per encoder batch")
    device: str | None = Field(None, description="encoder device; None picks cuda when available")
    seed: int = 0


class ReviewConfig(_Section):
    """`pathgen review`: where the review app listens."""

    host: str = Field("127.0.0.1", description="address to bind; any other than loopback needs a token")
    port: int = Field(8765, ge=0, le=65535)


class MilConfig(_Section):
    """Slide-level multiple-instance learning (``pathgen mil``): ACMIL's published recipe by default
    (AdamW, weight decay 1e-5, batch of one slide, cosine to 0, best epoch on validation)."""

    model: Literal["meanpool", "abmil", "acmil"] = "abmil"
    epochs: int = Field(50, gt=0, description="most epochs per run (early stopping may end sooner)")
    patience: int = Field(10, ge=1, description="epochs without a better validation score before stopping")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    d_inner: int = Field(128, gt=0, description="width after the first Linear+ReLU (ACMIL's D_inner)")
    d_attn: int = Field(128, gt=0, description="hidden width of the gated attention (ACMIL's D)")
    dropout: float = Field(0.0, ge=0, lt=1)
    standardize: bool = Field(
        True, description="z-score features with the training slides' mean/std (CLIP features are unit-norm)"
    )
    n_token: int = Field(5, ge=1, description="ACMIL attention branches")
    n_masked_patch: int = Field(10, ge=0, description="ACMIL: top instances per branch that may be masked")
    mask_drop: float = Field(0.6, ge=0, le=1, description="ACMIL: share of those top instances masked")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    folds: int = Field(5, ge=2, description="k of the k-fold by slide (patients together) without a split")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of training slides held for validation")
    device: str | None = Field(None, description="'cuda', 'cpu', ...; None picks cuda when available")


class ExecutorConfig(_Section):
    """How items of every stage are run: on this machine, or as Ray tasks (a cluster or local Ray)."""

    kind: Literal["local", "ray"] = Field("local", description="'local' (this machine) or 'ray'")
    ray_address: str | None = Field(
        None, description="Ray cluster: 'auto', 'ray://head:10001', ...; None starts a local instance"
    )
    ray_num_cpus: int | None = Field(None, gt=0, description="CPUs of a local Ray instance; None = all")
    max_retries: int = Field(3, ge=0, description="Ray retries of a task whose worker or node died")


class VideoConfig(_Section):
    """Quilt-style curation of narrated videos (`pathgen video`): transcript, frames, alignment."""

    sample_fps: float = Field(2.0, gt=0, description="frames analysed per second of video")
    shot_threshold: float = Field(
        27.0, gt=0, description="HSV content difference (0-255) that starts a new shot (ContentDetector's)"
    )
    min_shot_s: float = Field(1.0, ge=0, description="shortest shot in seconds")
    stable_ssim: float = Field(
        0.98, gt=0, le=1, description="SSIM of random crops above which frames are still"
    )
    stable_crops: int = Field(4, gt=0, description="random crops compared per frame pair")
    stable_crop_size: int = Field(64, gt=7, description="side of each crop, px of the analysis copy")
    min_stable_s: float = Field(3.0, ge=0, description="shortest stable clip kept (Quilt: 3 s)")
    analysis_side: int = Field(
        256, gt=15, description="longer side of the frame copy used for shots and motion"
    )
    classifier: str = Field(
        "colour", description="'colour' (weight-free), 'head:PATH.safetensors' or 'zeroshot:ENCODER_SPEC'"
    )
    histology_threshold: float = Field(0.5, ge=0, le=1, description="classifier score of a histology frame")
    colour_min_fraction: float = Field(
        0.25, gt=0, le=1, description="colour classifier: stained-tissue share of a histology frame"
    )
    dedup_bits: int = Field(
        6, ge=0, le=64, description="dHash distance at or below which frames are duplicates"
    )
    crop: bool = Field(True, description="crop frames to the slide area when there are borders or an inset")
    crop_min_gain: float = Field(
        0.1, ge=0, lt=1, description="crop only when it removes this share of the frame"
    )
    max_side: int = Field(1024, gt=15, description="longer side of a kept frame in the shards")
    lead_s: float = Field(2.0, ge=0, description="text spoken this long before a frame appears counts for it")
    lag_s: float = Field(2.0, ge=0, description="text spoken this long after a frame leaves counts for it")
    min_overlap: float = Field(
        0.5, gt=0, le=1, description="share of a chunk inside a frame's window to pair it"
    )
    pause_s: float = Field(1.0, ge=0, description="a silence this long ends a transcript chunk")
    max_chunk_s: float = Field(30.0, gt=0, description="longest transcript chunk")
    speech: str | None = Field(
        None,
        description="ASR model when no .vtt/.srt sidecar: 'hf:DIR' (Whisper), 'faster-whisper:NAME', 'tiny'",
    )
    language: str | None = Field(None, description="ASR language code (None: the model detects it)")
    llm: str | None = Field(
        None, description="text-cleaning LLM (OpenAI-compatible name with base_url); None: rules"
    )
    base_url: list[str] = Field(default_factory=list, description="OpenAI-compatible server(s) of `llm`")
    api_key_env: str | None = Field(None, description="environment variable holding the LLM API key")
    concurrency: int = Field(16, gt=0, description="LLM calls in flight")
    vocabulary: Path | None = Field(
        None, description="medical vocabulary file (term[TAB]id per line); None: built-in"
    )
    samples_per_shard: int = Field(1000, gt=0)
    jpeg_quality: int = Field(95, ge=1, le=100)
    workers: int = Field(1, ge=0, description="videos analysed at once (processes); 0 = CPUs, at most 8")

    @field_validator("base_url", mode="before")
    @classmethod
    def _one_url(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class InstructConfig(_Section):
    """Instruction-tuning data from exported pairs (`pathgen instruct`): conversations and MCQs."""

    model: str = Field("tiny", description="text LLM spec (an OpenAI-compatible name with base_url)")
    base_url: str | list[str] | None = Field(None, description="OpenAI-compatible base URL(s)")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    kinds: list[Literal["conversation", "mcq"]] = Field(
        default_factory=lambda: ["conversation", "mcq"], description="item kinds written per pair"
    )
    min_turns: int = Field(2, ge=1, description="fewest question-answer turns of a conversation")
    max_turns: int = Field(5, ge=1, description="most question-answer turns of a conversation")
    min_options: int = Field(4, ge=2, description="fewest options of a closed question")
    max_options: int = Field(5, ge=2, description="most options of a closed question")
    support: Literal["overlap", "judge"] = Field(
        "overlap",
        description="how an answer is checked against the description: term overlap or an LLM judge",
    )
    judge_model: str | None = Field(
        None,
        description="with support 'judge': the judge LLM spec (same base_url); None: the generation model",
    )
    min_support: float = Field(
        0.5, ge=0, le=1, description="share of the answer's content terms found in the description"
    )
    test_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of MCQs held out as the benchmark (never in the training JSON)"
    )
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = 1024
    seed: int | None = 0
    concurrency: int = Field(32, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)
    max_reasks: int = Field(2, ge=0, description="re-asks after a check fails, then the item is rejected")
    backoff_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    stop_grace_s: float = Field(30.0, ge=0)


class AssistantConfig(_Section):
    """A LLaVA-style assistant (`pathgen assistant train`): CLIP vision tower + causal LLM + projector."""

    vision_feature_layer: int = Field(-2, description="vision hidden layer fed to the projector (LLaVA: -2)")
    stage1_epochs: float = Field(1.0, ge=0, description="projector pre-training on image-caption pairs")
    stage1_lr: float = Field(1e-3, gt=0, description="LLaVA recipe: 1e-3")
    stage2_epochs: float = Field(3.0, ge=0, description="instruction tuning on the conversations")
    stage2_lr: float = Field(2e-5, gt=0, description="LLaVA recipe: 2e-5 (full); LoRA usually 2e-4")
    lora: bool = Field(False, description="stage 2 with LoRA adapters on the LLM (merged on save)")
    tune_vision: bool = Field(
        False, description="stage 2 also trains the vision tower (LLaVA keeps it frozen)"
    )
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    batch_size: int = Field(8, gt=0)
    max_length: int = Field(2048, gt=0, description="tokens per training sequence (longer ones are cut)")
    seed: int = 0


class RunConfig(_Section):
    """A whole run: inputs, run directory and every stage."""

    # Its errors include the caption section's: inputs hidden there too (see CaptionConfig).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    slides: list[str] = Field(
        default_factory=list, description="slide files, folders, a manifest, or pathgen:sample"
    )
    out: Path | None = None
    tile: TileConfig = Field(default_factory=TileConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, value: Any) -> Any:
        """``executor: ray`` is short for ``executor: {kind: ray}``."""
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("slides", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read a config; relative paths in it are resolved against the config file's folder.

        The slide input ``pathgen:sample`` (the sample shipped in the package) is kept as written."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"config file not found: {path}") from exc
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ValueError(f"{path}: not valid YAML{at}: {problem}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping, got {type(data).__name__}")
        base = path.resolve().parent  # absolute, so a run started elsewhere finds the same files
        slides = data.get("slides")
        if isinstance(slides, str):
            slides = [slides]
        if isinstance(slides, list):
            data["slides"] = [s if _kept_as_written(s) else str(_resolve(base, s)) for s in slides]
        if data.get("out"):
            data["out"] = str(_resolve(base, data["out"]))
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        """The config as YAML, with no credentials in it (base URLs lose their ``user:pass@``)."""
        return yaml.safe_dump(_without_credentials(self.model_dump(mode="json")), sort_keys=False)


def default_of(section: type[BaseModel], name: str) -> Any:
    """The default of one config field: the one place a default is written.

    Code outside this module that needs a default (the generators' sampling, the retry policy,
    the CLI's help text) reads it here, so a changed default changes everywhere at once.
    """
    try:
        info = section.model_fields[name]
    except KeyError:
        raise KeyError(f"{section.__name__} has no field {name!r}") from None
    return info.get_default(call_default_factory=True)


def section_model(name: str) -> type[BaseModel]:
    """The model of a run config section by its YAML key (``caption`` -> :class:`CaptionConfig`)."""
    sections = {
        key: info.annotation
        for key, info in RunConfig.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }
    sections["mil"] = MilConfig  # a stand-alone command's settings, not part of a run's config
    sections |= {"instruct": InstructConfig, "assistant": AssistantConfig}  # commands outside a run
    if name not in sections:
        raise KeyError(f"no config section {name!r}; sections: {', '.join(sections)}")
    return sections[name]


def _kept_as_written(slide: Any) -> bool:
    """``pathgen:sample`` and URLs (``s3://bucket/slides/``) are not paths relative to the config."""
    from pathgen.storage import is_url

    return is_sample_spec(slide) or is_url(slide)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def dump_section(section: BaseModel) -> dict[str, Any]:
    """A stage's resolved arguments, JSON-able, for fingerprints and the run's config.yaml.

    Credentials in base URLs are left out: they never change an output, and whatever is dumped may
    be stored.
    """
    return _without_credentials(section.model_dump(mode="json"))


def _without_credentials(data: Any) -> Any:
    """``data`` with every ``base_url`` (one or a list, at any depth) stripped of ``user:pass@``."""
    from pathgen.redact import redact_url

    if isinstance(data, dict):
        return {
            k: (
                [redact_url(u) for u in v]
                if isinstance(v, list)
                else redact_url(v)
                if isinstance(v, str)
                else v
            )
            if k == "base_url"
            else _without_credentials(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_without_credentials(v) for v in data]
    return data
