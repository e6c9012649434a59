#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""A small Stable Diffusion stand-in for the synthetic replication, pretrained offline on the synthetic set.

The paper starts from Stable Diffusion, whose CLIP text encoder carries meaning and whose UNet's cross-attention
already ties words to image regions (its text-to-image prior, Sec. 4.3). Neither set of weights can be downloaded
here, so this script makes small ones with the same roles, each trained as its original was:

1. `tokenizer/`: a CLIP BPE learned on the training expressions plus the ordinary words a person uses for them
   (`EXTRA_WORDS`: articles, plurals, synonyms), so every such word is one token;
2. `vae/`: an `AutoencoderKL` pretrained as an autoencoder (L1 + MSE + a small KL term), `scaling_factor` set
   from its latents' spread as Stable Diffusion's 0.18215;
3. `text_encoder/`: the text tower of a small `CLIPModel` trained contrastively (CLIP's own loss) on pairs of a
   training expression and the instance it names, drawn alone at its place in the frame (so colour, category and
   position are visible to the image tower); frozen in the stages, as in the paper;
4. `unet/` and `scheduler/`: an SD-shaped `UNet2DConditionModel` pretrained as a text-conditional latent
   diffusion model (epsilon prediction with diffusers' `DDPMScheduler`, SD's scaled-linear betas; or SD 2.x's
   v-prediction, `--prediction_type v_prediction`) on the training images, captioned with their instances'
   expressions, through that frozen text encoder.

`--no_diffusion_pretraining DIR` also writes the same base with a *random* UNet, the ablation that tests the
premise. The result is a diffusers folder (`model_index.json` of a `StableDiffusionPipeline`) that loads wherever
`--pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5` does. Each component is saved as
soon as it is trained and is not trained again, so an interrupted build resumes:

    python benchmarks/synthetic_base_model.py --dataset outputs/ablation/data --output_dir outputs/ablation/base
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

UNET = dict(
    block_out_channels=(32, 64, 96, 96),
    # one layer per block: 0.62x the cost of two (`results/stand_in_unet_cost.md`), the same BK-SDM-tiny student
    layers_per_block=1,
    norm_num_groups=16,
    cross_attention_dim=64,
    attention_head_dim=4,
    sample_size=16,
)
VAE = dict(
    block_out_channels=(32, 64, 64),
    norm_num_groups=16,
    layers_per_block=1,
    latent_channels=4,
)
TEXT = dict(hidden_size=64, intermediate_size=256, num_attention_heads=4, num_hidden_layers=3)
VISION = dict(
    hidden_size=64,
    intermediate_size=256,
    num_attention_heads=4,
    num_hidden_layers=3,
    patch_size=8,
)
# `--clip_same_colour_share` draws that share of every CLIP batch as groups of this many instances of one colour,
# so that colour cannot tell those pairs apart and the loss has to read the other words (`word_sensitivity`).
CLIP_SAME_COLOUR_GROUP = 8
VAE_BATCH_SIZE = 8  # 64 px crops: a CPU step of 8 takes about 0.2 s, one of 32 more than a second
MAX_TOKENS = 32  # the longest synthetic expression is about 16 tokens; SD's 77 would only add padding to attend to
TOKENIZER_MERGES = 3000  # more than the vocabulary needs: learning stops when no pair repeats
# Words a person writes for these scenes that the generator may not: articles, plurals, synonyms and prepositions.
EXTRA_WORDS = (
    "a an the this that one of on in at to by with near next beside behind front above below over under beneath "
    "left right top bottom upper lower middle center centre corner side image picture photo "
    "balls sphere spheres box boxes cube cubes star stars ring rings hoop triangle triangles glass glasses vase "
    "vases cup bubble bubbles smoke mist veil veils curtain furball furballs fur tassel tassels hair dandelion "
    "dandelions flower net nets mesh grey gray big large small little tiny huge clear transparent see-through "
    "blurry blurred solid opaque fuzzy round square"
).split()
DEFAULT_STEPS = dict(vae_steps=1000, clip_steps=1500, unet_steps=2500)
# The denoiser's target: SD 1.x's epsilon. v-prediction (SD 2.x's) weights the error on the image by 1 + SNR instead
# of SNR, so it counts where the noise hides the image and only the caption can tell what is there; it makes this
# UNet read its caption a little more (`caption_use`) but gives the stage-1 teacher nothing (stage1_levers.md).
PREDICTION_TYPE = "epsilon"
# diffusers' `StableDiffusionPipeline` layout, without the safety checker
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDPMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def build_base_model(
    path: Path,
    rows,
    seed: int = 0,
    vae_steps: int = DEFAULT_STEPS["vae_steps"],
    clip_steps: int = DEFAULT_STEPS["clip_steps"],
    unet_steps: int = DEFAULT_STEPS["unet_steps"],
    batch_size: int = 32,
    prediction_type: str = PREDICTION_TYPE,
    clip_options: dict | None = None,
) -> dict:
    """Write the base model to `path`, training each missing component; returns the seconds each took.

    Args:
        rows: the training split of the synthetic set (a `datasets.Dataset` with `image`, `alpha` and `texts`).
        vae_steps / clip_steps / unet_steps: pretraining steps of the VAE, of the CLIP model, and of the UNet as a
            text-to-image denoiser (0 leaves that component random).
        prediction_type: the denoiser's target, `"v_prediction"` (SD 2.x) or `"epsilon"` (SD 1.x).
        clip_options: keyword arguments of `pretrain_text_encoder` (`same_colour_share`, `patch_size`).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator()
    seconds = {}

    def component(name: str, make) -> None:
        if not (path / name).exists():
            start = time.perf_counter()
            torch.manual_seed(seed)
            model = make()
            model.save_pretrained(path / f"{name}.partial")
            (path / f"{name}.partial").rename(path / name)  # complete or absent: a resumed build never half-loads
            seconds[name] = time.perf_counter() - start

    component("tokenizer", lambda: build_tokenizer(rows))
    component("vae", lambda: pretrain_vae(rows, vae_steps, VAE_BATCH_SIZE, seed, accelerator))
    component(
        "text_encoder",
        lambda: pretrain_text_encoder(
            path, rows, clip_steps, 2 * batch_size, seed, accelerator, **(clip_options or {})
        ),
    )
    component("scheduler", lambda: make_noise_scheduler(prediction_type))
    component(
        "unet",
        lambda: pretrain_unet(path, rows, unet_steps, batch_size, seed, accelerator),
    )
    import diffusers

    index = {**MODEL_INDEX, "_diffusers_version": diffusers.__version__}
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return seconds


def without_diffusion_pretraining(base: Path, output: Path, seed: int = 0) -> Path:
    """`base` with its UNet replaced by a randomly initialised one of the same config (same tokenizer, VAE and
    text encoder): the ablation of the text-to-image prior."""
    from diffusers import UNet2DConditionModel

    if not (output / "unet").exists():
        output.mkdir(parents=True, exist_ok=True)
        for name in (
            "tokenizer",
            "vae",
            "text_encoder",
            "scheduler",
            "model_index.json",
        ):
            target = output / name
            if not target.exists():
                (shutil.copytree if (base / name).is_dir() else shutil.copy)(base / name, target)
        torch.manual_seed(seed)
        config = UNet2DConditionModel.load_config(base, subfolder="unet")
        UNet2DConditionModel.from_config(config).save_pretrained(output / "unet")
    return output


# ---------------------------------------------------------------------------------------------------- tokenizer


def build_tokenizer(rows):
    from diffusers_matte.testing import get_dummy_tokenizer

    corpus = [text for texts in rows["texts"] for text in texts]
    corpus += [" ".join(EXTRA_WORDS)] * 2  # twice: BPE merges what repeats, so each extra word becomes one token
    return get_dummy_tokenizer(TOKENIZER_MERGES, model_max_length=MAX_TOKENS, corpus=corpus)


def load_tokenizer(path: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")


# ---------------------------------------------------------------------------------------------------- VAE


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1


def _image_batches(rows, batch_size: int, crop: int, seed: int):
    """Endless batches of random `crop` x `crop` crops of random training images, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    while True:
        crops = []
        for i in rng.integers(0, len(rows), batch_size):
            image = _pixels(rows[int(i)]["image"])
            top = rng.integers(0, image.shape[0] - crop + 1)
            left = rng.integers(0, image.shape[1] - crop + 1)
            crops.append(image[top : top + crop, left : left + crop])
        yield torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)


def pretrain_vae(
    rows,
    steps: int,
    batch_size: int,
    seed: int,
    accelerator: Accelerator,
    crop: int = 64,
):
    """An `AutoencoderKL` trained on random crops (it is convolutional; crops keep a CPU step short): L1 + MSE
    reconstruction from a posterior sample, plus a small KL term (weight 1e-6, as Stable Diffusion's VAE). Then
    `scaling_factor` = 1 / std of the latents (posterior mode), so the UNet sees latents of unit spread.
    """
    from diffusers import AutoencoderKL

    blocks = len(VAE["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        **VAE,
    )
    crop = min(crop, rows[0]["image"].size[0])
    batches = _image_batches(rows, batch_size, crop, seed)
    if steps > 0:
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
        vae, optimizer = accelerator.prepare(vae, optimizer)
        vae.train()
        for _ in (progress := tqdm(range(steps), desc="VAE pretraining")):
            pixels = next(batches).to(accelerator.device)
            posterior = vae.encode(pixels).latent_dist
            reconstruction = vae.decode(posterior.sample(generator)).sample
            error = reconstruction - pixels
            loss = error.abs().mean() + error.square().mean() + 1e-6 * posterior.kl().mean()
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            progress.set_postfix(loss=f"{loss.item():.4f}")
        vae = accelerator.unwrap_model(vae)
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(next(batches).to(vae.device)).latent_dist.mode() for _ in range(8)])
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return vae.cpu()


def _prepare_training(model, steps: int, weight_decay: float, accelerator: Accelerator):
    """AdamW at 5e-4 with a one-cycle schedule (5% warm-up), as the CLIP and UNet pretrainings share them."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 5e-4, total_steps=steps, pct_start=0.05)
    model, optimizer = accelerator.prepare(model, optimizer)
    return model, optimizer, schedule


# ---------------------------------------------------------------------------------------------------- CLIP


def instance_views(rows, grey: float = 0.0) -> torch.Tensor:
    """Each row's instance drawn alone at its place over a plain grey frame, in [-1, 1]: what its expressions
    name (colour, category, material, size, position), without the other instances."""
    views = []
    for row in rows:
        alpha = np.asarray(row["alpha"], dtype=np.float32)[..., None] / 255.0
        views.append(_pixels(row["image"]) * alpha + grey * (1 - alpha))
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)


def clip_batch(
    colours: list,
    batch_size: int,
    rng: np.random.Generator,
    same_colour_share: float = 0.0,
    group: int = CLIP_SAME_COLOUR_GROUP,
) -> np.ndarray:
    """Indices of up to `batch_size` distinct rows: `same_colour_share` of them in groups of up to `group` rows
    that share a colour (each group of another colour), the rest drawn at random from the other rows."""
    by_colour: dict = {}
    for index, colour in enumerate(colours):
        by_colour.setdefault(colour, []).append(index)
    pools = list(by_colour.values())
    wanted = round(batch_size * same_colour_share)
    if wanted == 0:  # random batches, drawn as before this option existed
        return rng.choice(len(colours), min(batch_size, len(colours)), replace=False)
    grouped: list = []
    for c in rng.permutation(len(pools)):
        if len(grouped) == wanted:
            break
        take = min(group, len(pools[c]), wanted - len(grouped))
        grouped.extend(rng.choice(pools[c], take, replace=False))
    rest = np.setdiff1d(np.arange(len(colours)), grouped)
    extra = rng.choice(rest, min(batch_size - len(grouped), len(rest)), replace=False)
    return np.concatenate([np.array(grouped, dtype=int), extra]).astype(int)


def pretrain_text_encoder(
    path: Path,
    rows,
    steps: int,
    batch_size: int,
    seed: int,
    accelerator: Accelerator,
    same_colour_share: float = 0.0,
    patch_size: int = VISION["patch_size"],
):
    """The text tower of a `CLIPModel` trained with CLIP's symmetric contrastive loss (`return_loss=True`) on
    (instance view, one of its expressions) pairs; returned as a `CLIPTextModel`, as Stable Diffusion ships it.
    `same_colour_share` of each batch is drawn in groups of one colour (`clip_batch`); `patch_size` is the ViT's.
    """
    from transformers import CLIPConfig, CLIPModel, CLIPTextModel

    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        tokenize,
    )

    tokenizer = load_tokenizer(path)
    text_config = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT,
    )
    image_size = rows[0]["image"].size[0]
    config = CLIPConfig(
        text_config=text_config,
        vision_config=dict(image_size=image_size, **{**VISION, "patch_size": patch_size}),
        projection_dim=TEXT["hidden_size"],
    )
    clip = CLIPModel(config)
    text_tower = clip.text_model  # what `tokenize` reads its length limit from
    if steps > 0:
        views = instance_views(rows)
        texts = list(rows["texts"])
        rng = np.random.default_rng(seed)
        clip, optimizer, schedule = _prepare_training(clip, steps, 0.1, accelerator)
        clip.train()
        colours = [json.loads(meta)["color"] for meta in rows["meta"]]
        for _ in (progress := tqdm(range(steps), desc="CLIP pretraining")):
            index = clip_batch(colours, batch_size, rng, same_colour_share)
            prompts = [texts[i][rng.integers(len(texts[i]))] for i in index]
            ids, _ = tokenize(tokenizer, text_tower, prompts)
            loss = clip(
                input_ids=ids.to(accelerator.device),
                pixel_values=views[index].to(accelerator.device),
                return_loss=True,
            ).loss
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            progress.set_postfix(loss=f"{loss.item():.3f}")
        clip = accelerator.unwrap_model(clip)
    text_encoder = CLIPTextModel(CLIPTextModel.config_class(**text_config))
    text_encoder.load_state_dict(clip.text_model.state_dict())
    return text_encoder.eval().cpu()


# ---------------------------------------------------------------------------------------------------- UNet


def make_noise_scheduler(prediction_type: str = PREDICTION_TYPE):
    """Stable Diffusion's training noise schedule."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        steps_offset=1,
        clip_sample=False,
    )


def image_captions(rows, rng: np.random.Generator) -> dict:
    """image_id -> its instances (one expression each), joined as a caption a person could write:
    "the red ball in the top left corner of the image and a blue transparent box"."""
    by_image: dict = {}
    for image_id, texts in zip(rows["image_id"], rows["texts"]):
        by_image.setdefault(image_id, []).append(texts)
    return {
        image_id: [
            " and ".join(str(texts[rng.integers(len(texts))]) for texts in rng.permutation(np.array(ts, dtype=object)))
            for _ in range(4)
        ]
        for image_id, ts in by_image.items()
    }


@torch.no_grad()
def encode_images(vae, rows, batch_size: int = 64) -> tuple[torch.Tensor, list]:
    """Scaled latent means of every distinct training image (the VAE is frozen from here on), and their ids."""
    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        encode_latents,
    )

    first = {}
    for index, image_id in enumerate(rows["image_id"]):
        first.setdefault(image_id, index)
    ids, latents = list(first), []
    for start in range(0, len(ids), batch_size):
        pixels = [_pixels(rows[first[i]]["image"]) for i in ids[start : start + batch_size]]
        pixels = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
        latents.append(encode_latents(vae, pixels, vae.device))
    return torch.cat(latents).cpu(), ids


def pretrain_unet(path: Path, rows, steps: int, batch_size: int, seed: int, accelerator: Accelerator):
    """An SD-shaped UNet trained as a text-conditional latent diffusion model: noise prediction at random DDPM
    timesteps, conditioned on the frozen text encoder's hidden states of the image's caption (10% of captions
    dropped to the empty prompt, as Stable Diffusion was trained for classifier-free guidance).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        tokenize,
    )
    from diffusers_matte.testing import get_dummy_unet_init_dict

    unet = UNet2DConditionModel(**get_dummy_unet_init_dict(**UNET))
    if steps <= 0:
        return unet
    tokenizer = load_tokenizer(path)
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder").eval().to(accelerator.device)
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae").eval().to(accelerator.device)
    scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
    rng = np.random.default_rng(seed)
    latents, image_ids = encode_images(vae, rows)
    captions = image_captions(rows, rng)
    generator = torch.Generator().manual_seed(seed)
    unet, optimizer, schedule = _prepare_training(unet, steps, 1e-2, accelerator)
    unet.train()
    for _ in (progress := tqdm(range(steps), desc="UNet text-to-image pretraining")):
        index = rng.choice(len(latents), batch_size, replace=False)
        prompts = ["" if rng.random() < 0.1 else captions[image_ids[i]][rng.integers(4)] for i in index]
        with torch.no_grad():
            ids, _ = tokenize(tokenizer, text_encoder, prompts)
            text = text_encoder(ids.to(accelerator.device))[0]
        clean = latents[index].to(accelerator.device)
        noise = torch.randn(clean.shape, generator=generator).to(accelerator.device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        prediction = unet(noisy, timesteps.to(accelerator.device), text).sample
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(clean, noise, timesteps)
        else:
            target = noise
        loss = torch.nn.functional.mse_loss(prediction, target)
        optimizer.zero_grad()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    return accelerator.unwrap_model(unet).eval().cpu()


@torch.no_grad()
def caption_use(base: Path, rows, timesteps=(200, 500, 800, 950), seed: int = 0) -> dict:
    """Whether the base UNet reads its caption: at each timestep, the error of its clean-latent estimate (x0, from
    whatever it predicts) with each image's own caption and with another image's. A denoiser that has tied words
    to regions is better with its own caption where the noise hides the image; one that ignores text is level.
    Returns {timestep: {"own": mse, "other": mse}}."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        tokenize,
    )

    base = Path(base)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae").eval()
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet").eval()
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    latents, image_ids = encode_images(vae, rows)
    captions = image_captions(rows, np.random.default_rng(seed))
    ids, _ = tokenize(load_tokenizer(base), text_encoder, [captions[i][0] for i in image_ids])
    own = text_encoder(ids)[0]
    other = own.roll(1, dims=0)  # the next image's caption: same words, other scenes
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for t in timesteps:
        steps = torch.full((len(latents),), t)
        noisy = scheduler.add_noise(latents, torch.randn(latents.shape, generator=generator), steps)
        alpha = scheduler.alphas_cumprod[t]
        errors = {}
        for name, text in (("own", own), ("other", other)):
            prediction = unet(noisy, steps, text).sample
            if scheduler.config.prediction_type == "v_prediction":
                clean = alpha.sqrt() * noisy - (1 - alpha).sqrt() * prediction
            else:
                clean = (noisy - (1 - alpha).sqrt() * prediction) / alpha.sqrt()
            errors[name] = torch.nn.functional.mse_loss(clean, latents).item()
        result[int(t)] = errors
    return result


@torch.no_grad()
def word_sensitivity(base: Path) -> dict:
    """How far one word moves what the UNet reads: the mean distance between the frozen text encoder's hidden
    states (the whole padded sequence, which cross-attention reads) of two expressions that differ in one word,
    by the kind of word: a category ("the red ball" / "the red box"), a colour ("the red ball" / "the blue
    ball"), a position ("the ball on the left" / "the ball on the right"). An encoder that carries all three
    kinds of word moves its states by each; one that has erased a kind barely moves for it. Returns the three mean
    distances and, under "<kind> / colour", each relative to the colour's."""
    from transformers import CLIPTextModel

    from diffusers_matte.data.synthetic.shapes import CATEGORIES, COLORS
    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        tokenize,
    )

    base = Path(base)
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder").eval()
    tokenizer = load_tokenizer(base)

    def states(texts: list) -> torch.Tensor:
        ids, _ = tokenize(tokenizer, text_encoder, texts)
        return text_encoder(ids)[0].flatten(1)

    def mean_swap_distance(groups: list) -> float:
        """Mean distance between the expressions of each group (they differ in one word), over all groups."""
        return torch.cat([torch.pdist(states(texts)) for texts in groups]).mean().item()

    swaps = {
        "category": [[f"the {colour} {c}" for c in CATEGORIES] for colour in COLORS],
        "colour": [[f"the {colour} {c}" for colour in COLORS] for c in CATEGORIES],
        "position": [[f"the {c} on the {side}" for side in ("left", "right")] for c in CATEGORIES]
        + [[f"the {c} at the {row}" for row in ("top", "bottom")] for c in CATEGORIES],
    }
    result = {kind: mean_swap_distance(groups) for kind, groups in swaps.items()}
    for kind in ("category", "position"):
        result[f"{kind} / colour"] = result[kind] / result["colour"] if result["colour"] else float("inf")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="a synthetic set written by save_to_disk",
    )
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument(
        "--no_diffusion_pretraining",
        type=Path,
        default=None,
        help="also write the random-UNet base here",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=32)
    for name, steps in DEFAULT_STEPS.items():
        parser.add_argument(f"--{name}", type=int, default=steps)
    parser.add_argument("--prediction_type", choices=("v_prediction", "epsilon"), default=PREDICTION_TYPE)
    parser.add_argument(
        "--clip_same_colour_share",
        type=float,
        default=0.0,
        help=f"share of each CLIP batch drawn as groups of {CLIP_SAME_COLOUR_GROUP} instances of one colour "
        "(default: 0, random batches)",
    )
    parser.add_argument(
        "--clip_patch_size", type=int, default=VISION["patch_size"], help="the CLIP ViT's patch size (default: 8)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.clip_same_colour_share <= 1:
        parser.error(f"--clip_same_colour_share: expected a share in [0, 1], got {args.clip_same_colour_share}")
    import datasets

    rows = datasets.load_from_disk(str(args.dataset))["train"]
    steps = {name: getattr(args, name) for name in DEFAULT_STEPS}
    clip_options = dict(same_colour_share=args.clip_same_colour_share, patch_size=args.clip_patch_size)
    seconds = build_base_model(
        args.output_dir,
        rows,
        args.seed,
        batch_size=args.batch_size,
        prediction_type=args.prediction_type,
        clip_options=clip_options,
        **steps,
    )
    if args.no_diffusion_pretraining is not None:
        without_diffusion_pretraining(args.output_dir, args.no_diffusion_pretraining, args.seed)
    print(json.dumps({"output_dir": str(args.output_dir), "seconds": seconds}, indent=1))


if __name__ == "__main__":
    main()
