# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""A small Stable-Diffusion-shaped base model for the synthetic replication, built offline.

The paper starts from Stable Diffusion and CLIP weights, which are not available here. Their stand-ins:

* a CLIP tokenizer whose BPE is learned on the synthetic training expressions, so that each word of the
  synthetic vocabulary is one token (the tests' generic offline tokenizer splits "dandelion" into five pieces);
* a small VAE pretrained as an autoencoder on the synthetic training images (a random VAE encoder keeps
  almost nothing of the image: a 3x3 neighbourhood of its latents explains about 15% of the colour variance
  of the pixels below it), with `scaling_factor` set from its latents' spread, as Stable Diffusion's;
* a randomly initialised UNet (trained by the stages) and CLIP text encoder (frozen, as in the paper: the
  trained text adapter on top of it is what learns).
"""

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

UNET = dict(
    block_out_channels=(32, 64, 96, 96),
    layers_per_block=2,
    norm_num_groups=16,
    cross_attention_dim=64,
    attention_head_dim=4,
    sample_size=32,
)
VAE = dict(
    block_out_channels=(32, 64, 64),
    norm_num_groups=16,
    layers_per_block=1,
    latent_channels=4,
)
TEXT = dict(
    hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2
)
TOKENIZER_MERGES = 2000  # more than the synthetic vocabulary needs: learning stops when no pair repeats


def build_base_model(
    path: Path, rows, seed: int, vae_steps: int, vae_batch_size: int = 8
) -> None:
    """Write `vae/`, `text_encoder/`, `tokenizer/` and `unet/` to `path`.

    Args:
        rows: the training split of the synthetic set (a `datasets.Dataset` with `image` and `texts`).
        vae_steps: autoencoder pretraining steps of the VAE (0 leaves it random).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffusers_matte.testing import get_dummy_tokenizer, get_dummy_unet_init_dict

    corpus = [text for texts in rows["texts"] for text in texts]
    tokenizer = get_dummy_tokenizer(TOKENIZER_MERGES, corpus=corpus)
    torch.manual_seed(seed)
    blocks = len(VAE["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        **VAE,
    )
    pretrain_vae(vae, rows, vae_steps, vae_batch_size, seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TEXT,
        )
    )
    unet = UNet2DConditionModel(**get_dummy_unet_init_dict(**UNET))
    for name, component in [
        ("vae", vae),
        ("text_encoder", text_encoder),
        ("tokenizer", tokenizer),
        ("unet", unet),
    ]:
        component.save_pretrained(path / name)


def _image_batches(rows, batch_size: int, crop: int, seed: int):
    """Endless batches of random `crop` x `crop` crops of random training images, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    while True:
        crops = []
        for i in rng.integers(0, len(rows), batch_size):
            image = np.asarray(rows[int(i)]["image"].convert("RGB"))
            top = rng.integers(0, image.shape[0] - crop + 1)
            left = rng.integers(0, image.shape[1] - crop + 1)
            crops.append(image[top : top + crop, left : left + crop])
        pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
        yield pixels / 127.5 - 1


def pretrain_vae(
    vae,
    rows,
    steps: int,
    batch_size: int,
    seed: int,
    crop: int = 64,
    learning_rate: float = 1e-3,
) -> None:
    """Train `vae` as an autoencoder on random crops (the VAE is convolutional; crops keep a CPU step short): L1 +
    MSE reconstruction from a posterior sample, plus a small KL term (weight 1e-6, as Stable Diffusion's VAE). Then
    set `scaling_factor` to 1 / std of the latents (posterior mode), so that the UNet sees latents of unit spread,
    as with Stable Diffusion's factor 0.18215.
    """
    if steps <= 0:
        return
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate, weight_decay=0.0)
    batches = _image_batches(rows, batch_size, crop, seed)
    vae.train()
    for _ in (progress := tqdm(range(steps), desc="VAE pretraining")):
        pixels = next(batches)
        posterior = vae.encode(pixels).latent_dist
        reconstruction = vae.decode(posterior.sample(generator)).sample
        error = reconstruction - pixels
        loss = error.abs().mean() + error.square().mean() + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        latents = torch.cat(
            [vae.encode(next(batches)).latent_dist.mode() for _ in range(8)]
        )
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
