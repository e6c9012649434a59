# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`--use_ema`: an exponential moving average of each trained model (diffusers' `EMAModel`), kept in the
checkpoints and saved as the stage's output."""

import argparse
import os

import torch
from accelerate import Accelerator
from torch import nn


def trained_parameters(model: nn.Module) -> list:
    return [p for p in model.parameters() if p.requires_grad]


EMA_STATE = "ema_state.pt"


def make_ema_models(args: argparse.Namespace, models: dict[str, nn.Module], accelerator: Accelerator) -> dict:
    """With `--use_ema`, one diffusers `EMAModel` per trained model, over its trained parameters."""
    if not getattr(args, "use_ema", False):
        return {}
    from diffusers.training_utils import EMAModel

    emas = {}
    for name, model in models.items():
        emas[name] = EMAModel(trained_parameters(model), decay=args.ema_decay)
        emas[name].to(accelerator.device)
    return emas


def register_ema_hooks(accelerator: Accelerator, emas: dict) -> None:
    """Checkpoints hold the averages (`EMA_STATE`), so a resumed run continues them exactly."""

    def save(models, weights, output_dir):
        if accelerator.is_main_process:
            torch.save({name: ema.state_dict() for name, ema in emas.items()}, os.path.join(output_dir, EMA_STATE))

    def load(models, input_dir):
        path = os.path.join(input_dir, EMA_STATE)
        if not os.path.isfile(path):
            raise ValueError(
                f"--use_ema: the checkpoint {input_dir} has no {EMA_STATE}; resume with the same --use_ema."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, ema in emas.items():
            ema.load_state_dict(state[name])
            ema.to(accelerator.device)

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)
