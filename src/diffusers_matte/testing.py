# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Tiny, offline, seeded builders for tests, docs and outside test suites.

Everything here builds from configs with random weights: nothing is downloaded.
"""

from typing import Any


def get_dummy_unet_init_dict(**overrides: Any) -> dict:
    """Config of a tiny Stable-Diffusion-shaped UNet (4 levels, SD 1.x block layout).

    The layout mirrors SD 1.5 (three cross-attention down blocks and a plain one, the mirror image on the
    way up, a cross-attention mid block, two layers per block) so that BK-SDM pruning
    (`MatteUNet2DConditionModel.from_teacher`) applies to it, at a size that runs in milliseconds on CPU.
    Keyword arguments override entries, e.g. `prediction_head="region"`.
    """
    config = {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "up_block_types": (
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        "block_out_channels": (16, 32, 32, 32),
        "layers_per_block": 2,
        "norm_num_groups": 8,
        "cross_attention_dim": 24,
        "attention_head_dim": 2,
    }
    config.update(overrides)
    return config
