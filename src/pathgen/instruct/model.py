"""The assistant's architecture: a `pathgen train` CLIP image tower + a causal LLM + a projector,
assembled as transformers' ``LlavaForConditionalGeneration`` (a folder transformers and vLLM load).

Why convert open_clip weights into ``CLIPVisionModel``: LLaVA's vision tower is built by
``AutoModel.from_config(vision_config)``, and vLLM's LLaVA loader knows CLIP, SigLIP and a few
others, not open_clip. An open_clip ViT is the same network as CLIP's vision transformer (patch
conv without bias, class token, learned positions, pre-LN blocks, a final LayerNorm): only the names
differ and the attention's fused ``in_proj`` splits into q, k and v. Towers that are not such a
ViT (timm CNNs, attentional pooling, layer scale) are refused with the reason.

The projector is LLaVA-1.5's ``mlp2x_gelu`` (Linear, GELU, Linear), transformers'
``LlavaMultiModalProjector``; the image token is added to the LLM's tokenizer and its embeddings
resized. The chat template is LLaVA-1.5's ``USER: <image>\\n... ASSISTANT:``, with the LLM's end
token after each answer so generation stops there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGE_TOKEN = "<image>"
# LLaVA-1.5's conversation format; EOS is the LLM's end token, filled in when the processor is built.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{% else %}{{ message['role'] | upper }}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}EOS{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)
_UNSUPPORTED = (
    "timm_model_name", "hf_model_name", "ls_init_value", "attentional_pool", "attn_pooler_queries",
    "no_ln_pre", "final_ln_after_pool", "output_tokens", "act_kwargs", "norm_kwargs",
)  # fmt: skip


def read_clip_folder(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(model_cfg, preprocess_cfg, visual state dict)`` of a `pathgen train` model folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_file, weights = folder / "open_clip_config.json", folder / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise FileNotFoundError(
            f"{folder} is not a `pathgen train` model folder "
            "(it needs open_clip_config.json and model.safetensors)"
        )
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    state = {k[len("visual.") :]: v for k, v in load_file(str(weights)).items() if k.startswith("visual.")}
    return cfg["model_cfg"], cfg.get("preprocess_cfg", {}), state


def clip_vision_config(model_cfg: dict[str, Any]) -> Any:
    """The ``CLIPVisionConfig`` of an open_clip ViT image tower, or a ValueError saying why not."""
    from transformers import CLIPVisionConfig

    vision = dict(model_cfg.get("vision_cfg", {}))
    bad = [k for k in _UNSUPPORTED if vision.get(k)]
    pool = vision.get("pool_type", "tok")
    if bad or pool != "tok":
        raise ValueError(
            "only open_clip ViT image towers (class-token pooling, no layer scale, no timm/HF tower) convert "
            f"to a CLIP vision tower; this one has {', '.join(bad) or f'pool_type={pool}'}"
        )
    width = int(vision.get("width", 768))
    head_width = int(vision.get("head_width", 64))
    image_size = vision.get("image_size", 224)
    image_size = image_size[0] if isinstance(image_size, (list, tuple)) else image_size
    return CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=int(width * float(vision.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(vision.get("layers", 12)),
        num_attention_heads=width // head_width,
        image_size=int(image_size),
        patch_size=int(vision.get("patch_size", 16)),
        projection_dim=int(model_cfg.get("embed_dim", 512)),
        hidden_act="quick_gelu" if model_cfg.get("quick_gelu") else "gelu",
        layer_norm_eps=1e-5,
    )


def clip_vision_state(visual: dict[str, Any], layers: int) -> dict[str, Any]:
    """open_clip ``visual.*`` weights under ``CLIPVisionModelWithProjection``'s names."""
    s: dict[str, Any] = {
        "vision_model.embeddings.patch_embedding.weight": visual["conv1.weight"],
        "vision_model.embeddings.class_embedding": visual["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": visual["positional_embedding"],
        "vision_model.pre_layrnorm.weight": visual["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": visual["ln_pre.bias"],
        "vision_model.post_layernorm.weight": visual["ln_post.weight"],
        "vision_model.post_layernorm.bias": visual["ln_post.bias"],
    }
    if "proj" in visual:
        s["visual_projection.weight"] = visual["proj"].T.contiguous()
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        q, k, v = visual[src + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = visual[src + "attn.in_proj_bias"].chunk(3)
        for name, w, b in (("q", q, qb), ("k", k, kb), ("v", v, vb)):
            s[f"{dst}self_attn.{name}_proj.weight"] = w.contiguous()
            s[f"{dst}self_attn.{name}_proj.bias"] = b.contiguous()
        pairs = {
            "attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
            "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
        }  # fmt: skip
        for a, b in pairs.items():
            for p in ("weight", "bias"):
                s[f"{dst}{b}.{p}"] = visual[f"{src}{a}.{p}"]
    return s


def load_vision_tower(folder: Path, with_projection: bool = False) -> tuple[Any, Any]:
    """``(CLIPVisionModel or ...WithProjection, CLIPImageProcessor)`` from a CLIP model folder."""
    from transformers import CLIPImageProcessor, CLIPVisionModel, CLIPVisionModelWithProjection

    model_cfg, pre, visual = read_clip_folder(folder)
    config = clip_vision_config(model_cfg)
    state = clip_vision_state(visual, config.num_hidden_layers)
    cls = CLIPVisionModelWithProjection if with_projection else CLIPVisionModel
    model = cls(config)
    if not with_projection:
        state.pop("visual_projection.weight", None)
    if not any(
        k.startswith("vision_model.") for k in model.state_dict()
    ):  # CLIPVisionModel in transformers 5
        state = {k.removeprefix("vision_model."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"vision tower conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    size = config.image_size
    processor = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(pre.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        image_std=list(pre.get("std", (0.26862954, 0.26130258, 0.27577711))),
        resample=3,  # bicubic, open_clip's default
    )
    return model, processor


def load_llm(source: str) -> tuple[Any, Any]:
    """``(AutoModelForCausalLM, tokenizer)`` from a hub id or a local folder (float32 on CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        llm = AutoModelForCausalLM.from_pretrained(source)
    except OSError as exc:
        raise FileNotFoundError(f"cannot load a causal LLM from {source!r}: {exc}") from exc
    return llm, tokenizer


def build_llava(clip_folder: Path, llm_source: str, vision_feature_layer: int = -2) -> tuple[Any, Any]:
    """``(LlavaForConditionalGeneration, LlavaProcessor)``: the converted tower, the LLM's weights,
    a fresh projector; the tokenizer gains the image token."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tower, image_processor = load_vision_tower(clip_folder)
    llm, tokenizer = load_llm(llm_source)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    vc = tower.config
    n_layers = vc.num_hidden_layers
    if not -n_layers - 1 <= vision_feature_layer <= n_layers:
        raise ValueError(f"vision_feature_layer {vision_feature_layer} outside the tower's {n_layers} layers")
    config = LlavaConfig(
        vision_config=vc.to_dict(),
        text_config=llm.config.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(vc.image_size // vc.patch_size) ** 2,
        vision_feature_select_strategy="default",  # drop the class token, as LLaVA-1.5
        vision_feature_layer=vision_feature_layer,
        projector_hidden_act="gelu",
    )
    with torch.device("cpu"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(tower.state_dict())
    base = llm.get_decoder() if hasattr(llm, "get_decoder") else llm.model
    model.model.language_model.load_state_dict(base.state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    model.resize_token_embeddings(len(tokenizer))
    model.config.text_config.vocab_size = len(tokenizer)
    for cfg in (model.generation_config,):
        cfg.pad_token_id = tokenizer.pad_token_id
        cfg.eos_token_id = tokenizer.eos_token_id
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vc.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE.replace("EOS", tokenizer.eos_token or ""),
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # the class token the tower outputs (dropped by "default")
    )
    return model, processor


def tiny_llm(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random Llama (2 layers, 64 wide) with pathgen's tiny BPE tokenizer to ``folder``:
    the offline stand-in for an LLM (``--llm tiny``), built in code, no download."""
    import torch
    from transformers import LlamaForCausalLM

    from pathgen.models.tiny_vlm import tiny_llama_config

    tokenizer = _tiny_tokenizer()
    config = tiny_llama_config(tokenizer, max_positions=512, tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def _tiny_tokenizer(vocab_size: int = 1000) -> Any:
    """A byte-level BPE over every byte (any text encodes without ``<unk>``), merges learned from
    the morphology prompts shipped with pathgen and the chat format's words."""
    from transformers import PreTrainedTokenizerFast

    from pathgen.models.tiny_vlm import _packaged_texts, train_bpe

    chat = "USER: ASSISTANT: Answer with the option's letter from the given choices directly. A) B) C) D) E)"
    return PreTrainedTokenizerFast(
        tokenizer_object=train_bpe([*_packaged_texts(), chat], vocab_size, byte_complete=True),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
