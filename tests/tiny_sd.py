"""Tiny random-weight Stable Diffusion models (SD 1.x, SD 2.x-v, SDXL shapes) in the two layouts artists have.

`make_sd_folder` writes a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder(s)/,
tokenizer(s)/, scheduler/). `write_single_file` writes the same weights as one checkpoint in the original
(LDM / A1111 / ComfyUI) key layout: `model.diffusion_model.*` UNet with input/middle/output blocks,
`first_stage_model.*` VAE with 1x1-conv attention, and the text encoders under `cond_stage_model.transformer`
(SD 1.x CLIP), `cond_stage_model.model` (SD 2.x OpenCLIP, fused q/k/v) or `conditioner.embedders.{0,1}` (SDXL).
The renaming below is the inverse of the layout diffusers' single-file loader reads; the tests check that the
loader gives back exactly these weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

FAMILY_SHAPES = {
    # name: (text encoder widths, cross-attention width, prediction)
    "sd1": ((32,), 32, "epsilon"),
    "sd2v": ((32,), 32, "v_prediction"),
    "sdxl": ((32, 64), 96, "epsilon"),
}
TIME_EMBED = 8  # SDXL's size/crop id embedding width (256 in the real model)


def unet_config(family: str) -> dict:
    widths, cross, _ = FAMILY_SHAPES[family]
    cfg = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
               norm_num_groups=8, cross_attention_dim=cross, attention_head_dim=(2, 4) if family != "sd1" else 4)
    if family == "sdxl":
        cfg.update(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2),
                   use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
                   projection_class_embeddings_input_dim=widths[-1] + 6 * TIME_EMBED)
    else:
        cfg.update(down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), use_linear_projection=family == "sd2v")
    return cfg


def vae_config() -> dict:
    return dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
                block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64)


def text_config(width: int, family: str):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_attention_heads=4,
                          num_hidden_layers=2, max_position_embeddings=77, projection_dim=width,
                          hidden_act="quick_gelu" if family == "sd1" else "gelu", bos_token_id=0, eos_token_id=2,
                          pad_token_id=1)


def scheduler_config(family: str) -> dict:
    return {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "num_train_timesteps": 1000, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
            "prediction_type": FAMILY_SHAPES[family][2], "timestep_spacing": "leading"}


def tiny_components(family: str, seed: int = 0) -> dict:
    """Random tiny UNet, VAE, text encoder(s) and tokenizer(s) of a family, deterministic in `seed`."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from sdedit.models.clip_tokenizer import clip_tokenizer

    torch.manual_seed(seed)
    widths = FAMILY_SHAPES[family][0]
    unet = UNet2DConditionModel(**unet_config(family))
    with torch.no_grad():  # diffusers zero-initialises some output layers; random weights everywhere test more
        for p in unet.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    vae = AutoencoderKL(**vae_config())
    encoders = [CLIPTextModel(text_config(widths[0], family))]
    tokenizers = [clip_tokenizer("<|endoftext|>" if family != "sd2v" else "!")]
    if family == "sdxl":
        encoders.append(CLIPTextModelWithProjection(text_config(widths[1], family)))
        tokenizers.append(clip_tokenizer("!"))
    return {"unet": unet.eval(), "vae": vae.eval(), "text_encoders": [e.eval() for e in encoders],
            "tokenizers": tokenizers, "scheduler": DDIMScheduler.from_config(scheduler_config(family))}


def make_sd_folder(path: Path, family: str, seed: int = 0) -> Path:
    """A diffusers Stable Diffusion pipeline folder with tiny random weights."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    c = tiny_components(family, seed)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=c["vae"], text_encoder=c["text_encoders"][0],
                                         text_encoder_2=c["text_encoders"][1], tokenizer=c["tokenizers"][0],
                                         tokenizer_2=c["tokenizers"][1], unet=c["unet"], scheduler=c["scheduler"])
    else:
        pipe = StableDiffusionPipeline(vae=c["vae"], text_encoder=c["text_encoders"][0], tokenizer=c["tokenizers"][0],
                                       unet=c["unet"], scheduler=c["scheduler"], safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def write_configs(folder: Path, family: str) -> Path:
    """Only the configs of a tiny family (what a sidecar's "config" points at)."""
    c = tiny_components(family)
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in (("unet", c["unet"]), ("vae", c["vae"])):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "config.json").write_text(json.dumps(dict(obj.config)))
    for i, enc in enumerate(c["text_encoders"]):
        enc.config.save_pretrained(folder / ("text_encoder" if i == 0 else "text_encoder_2"))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config(family)))
    return folder


# -- the original (LDM) key layout -----------------------------------------------------------------------
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
          "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _unet_key(key: str, cfg: dict) -> str:
    parts = key.split(".")
    per = cfg["layers_per_block"] + 1
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    head = ".".join(parts[:2])
    if head in fixed:
        return fixed[head] + "." + ".".join(parts[2:])
    if parts[0] == "conv_in" or parts[0] in ("conv_norm_out", "conv_out"):
        return fixed[parts[0]] + "." + ".".join(parts[1:])
    if parts[0] == "down_blocks":
        i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "downsamplers":
            return f"input_blocks.{(i + 1) * per}.0.op." + ".".join(rest[1:])
        block = 1 + i * per + j
        return _inner(f"input_blocks.{block}", kind, rest)
    if parts[0] == "mid_block":
        kind, j, rest = parts[1], int(parts[2]), parts[3:]
        return _inner(f"middle_block.{1 if kind == 'attentions' else 2 * j}", kind, rest, resnet_slot=False)
    if parts[0] == "up_blocks":
        i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "upsamplers":
            slot = 2 if "CrossAttn" in cfg["up_block_types"][i] else 1
            return f"output_blocks.{i * per + per - 1}.{slot}." + ".".join(rest)
        return _inner(f"output_blocks.{i * per + j}", kind, rest)
    raise KeyError(key)


def _inner(block: str, kind: str, rest: list[str], resnet_slot: bool = True) -> str:
    if kind == "resnets":
        name = RESNET[rest[0]]
        return f"{block}{'.0' if resnet_slot else ''}.{name}." + ".".join(rest[1:])
    return f"{block}{'.1' if resnet_slot else ''}." + ".".join(rest)


def _vae_key(key: str, n_blocks: int, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    k = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    parts = k.split(".")
    if parts[1] == "down_blocks":
        i = parts[2]
        if parts[3] == "downsamplers":
            return f"{parts[0]}.down.{i}.downsample." + ".".join(parts[5:]), value
        return f"{parts[0]}.down.{i}.block." + ".".join(parts[4:]), value
    if parts[1] == "up_blocks":
        i = n_blocks - 1 - int(parts[2])
        if parts[3] == "upsamplers":
            return f"{parts[0]}.up.{i}.upsample." + ".".join(parts[5:]), value
        return f"{parts[0]}.up.{i}.block." + ".".join(parts[4:]), value
    if parts[1] == "mid_block":
        if parts[2] == "resnets":
            return f"{parts[0]}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:]), value
        name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}[parts[4]]
        tail = parts[-1]
        if value.dim() == 2:
            value = value[:, :, None, None]  # the original's attention projections are 1x1 convolutions
        return f"{parts[0]}.mid.attn_1.{name}.{tail}", value
    return k, value


def _clip_keys(encoder, prefix: str) -> dict:
    """An HF CLIP text model under an original prefix ("cond_stage_model.transformer.text_model." style)."""
    out = {}
    for k, v in encoder.state_dict().items():
        if k.endswith("position_ids") or k.startswith("text_projection"):
            continue
        out[prefix + k.removeprefix("text_model.")] = v
    return out


def _open_clip_keys(encoder, prefix: str, projection: torch.Tensor) -> dict:
    sd = {k.removeprefix("text_model."): v for k, v in encoder.state_dict().items()}
    out = {prefix + "positional_embedding": sd["embeddings.position_embedding.weight"],
           prefix + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
           prefix + "ln_final.weight": sd["final_layer_norm.weight"], prefix + "ln_final.bias": sd["final_layer_norm.bias"],
           prefix + "text_projection": projection}
    for i in range(encoder.config.num_hidden_layers):
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([sd[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out[dst + f"attn.out_proj.{kind}"] = sd[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = sd[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = sd[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = sd[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = sd[src + f"mlp.fc2.{kind}"]
    return out


def original_state_dict(components: dict, family: str, text_model_level: bool = True) -> dict:
    """The components' weights renamed to the original single-file layout of their family.

    `text_model_level=False` writes the CLIP encoder as diffusers' conversion script does under transformers 5
    (`cond_stage_model.transformer.embeddings.*`: CLIPTextModel's own keys, which lost `text_model.`)."""
    level = "text_model." if text_model_level else ""
    unet, vae = components["unet"], components["vae"]
    cfg = dict(unet.config)
    state = {"model.diffusion_model." + _unet_key(k, cfg): v for k, v in unet.state_dict().items()}
    n_blocks = len(vae.config.block_out_channels)
    for k, v in vae.state_dict().items():
        key, value = _vae_key(k, n_blocks, v)
        state["first_stage_model." + key] = value
    encoders = components["text_encoders"]
    if family == "sd1":
        state.update(_clip_keys(encoders[0], "cond_stage_model.transformer." + level))
    elif family == "sd2v":
        width = encoders[0].config.hidden_size
        state.update(_open_clip_keys(encoders[0], "cond_stage_model.model.", torch.eye(width)))
    else:
        state.update(_clip_keys(encoders[0], "conditioner.embedders.0.transformer." + level))
        proj = encoders[1].state_dict()["text_projection.weight"].T.contiguous()
        state.update(_open_clip_keys(encoders[1], "conditioner.embedders.1.model.", proj))
    return {k: v.contiguous() for k, v in state.items()}


def write_single_file(path: Path, family: str, seed: int = 0, config_folder: str | None = "config",
                      text_model_level: bool = True, components: dict | None = None) -> dict:
    """A single-file checkpoint (.safetensors or .ckpt) of a tiny family, plus a sidecar JSON pointing at its
    configs (the shipped ones are for the real sizes). Returns the components it was made from (random ones
    from `seed` unless given)."""
    components = components or tiny_components(family, seed)
    state = original_state_dict(components, family, text_model_level)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 1}, str(path))
    if config_folder:
        write_configs(path.parent / config_folder, family)
        path.with_suffix(".json").write_text(json.dumps({"config": config_folder}))
    return components


# -- a tiny UNet that has learned something: epsilon or v on flat pictures -----------------------------------
def fit_prediction(components: dict, prediction: str, steps: int = 300, seed: int = 0) -> dict:
    """Fit the components' UNet for `steps` Adam steps to predict epsilon or v (prediction = "epsilon" |
    "v_prediction") for noised latents of flat-coloured 64 px pictures, with the empty prompt's embedding, so
    that what it predicts can be told from one call, as in a real checkpoint. Returns the components."""
    from diffusers import DDIMScheduler

    gen = torch.Generator().manual_seed(seed)
    vae, unet, encoder, tok = (components["vae"], components["unet"], components["text_encoders"][0],
                               components["tokenizers"][0])
    abar = DDIMScheduler.from_config(scheduler_config("sd2v")).alphas_cumprod.float()
    colours = torch.rand(48, 3, 1, 1, generator=gen) * 2 - 1
    with torch.no_grad():
        x0 = vae.encode(colours.expand(-1, -1, 64, 64)).latent_dist.mode() * vae.config.scaling_factor
        ids = tok("", padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        emb = encoder(ids)[0]
    unet.train().requires_grad_(True)
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    for _ in range(steps):
        pick = torch.randint(0, len(x0), (16,), generator=gen)
        t = torch.randint(100, 900, (16,), generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        eps = torch.randn(x0[pick].shape, generator=gen)
        x_t = a.sqrt() * x0[pick] + (1 - a).sqrt() * eps
        target = eps if prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0[pick]
        loss = torch.nn.functional.mse_loss(unet(x_t, t, encoder_hidden_states=emb.expand(16, -1, -1)).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.eval().requires_grad_(False)
    components["fit_loss"] = loss.item()
    return components
