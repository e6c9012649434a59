# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What a user waits for: `SoftGroundingMattingPipeline` end to end and per stage, against the cascades they would
pick instead, all at full size with random weights (nothing is downloaded).

Ours, each in its default mode (the SD VAE encoder) and its fast mode (diffusers' `AutoencoderTiny`, the TAESD
architecture, as the image encoder):

- `sd21`, the released configuration: SD 2.1-base student UNet (BK-SDM tiny with the section 3.3 self-attention)
  and the OpenCLIP ViT-H text encoder (23 layers, as SD 2.x uses it);
- `sd15`: the SD 1.5 student (BK-SDM tiny) with the CLIP ViT-L text encoder.

Both read a 512x512 image and a 77-token prompt; the refiner (`SparseMatteRefiner`) is timed on its own at a 2048
long edge with about 5% uncertain pixels, what a 2048-pixel input adds. The cascades are built from transformers'
own classes: Matte Anything = GroundingDINO-T (800x800) + SAM-H (1024x1024, one box) + ViTMatte-B (512x512, image
and trimap); MAM ~ GroundingDINO-T + SAM-H (its M2M head is not built); the cheapest = CLIPSeg (352x352) +
ViTMatte-S. A cascade's time is the per-round sum of its components; the glue between them (boxes, trimaps,
resizing) is not timed.

Every timed unit runs once per round, interleaved with the others (the first one rotates), so that the ratio of
a round compares calls made under the same machine load; the foreign CPU load of every call is read from
/proc/stat. Stage times come from forward hooks on the components inside the same calls (CUDA events with
`--device cuda`). MACs are counted once at batch 1 with the attention matmuls (`cost_measurement.count_macs`).
Peak memory is the unit's weights plus the rise of the process's peak during one call (`peak_memory_rise`).
`--speed_options` adds CPU speed options for the student UNet and both image encoders: channels_last, bf16
autocast against bf16 weights, the SDPA backends and `torch.compile`.

Examples::

    # the committed result (about 25 minutes on 2 shared cores)
    python benchmarks/benchmark_pipeline.py --speed_options --output benchmarks/results/pipeline_cpu.md --overwrite
    # a quick look with tiny models (seconds)
    python benchmarks/benchmark_pipeline.py --quick --output /tmp/pipeline.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark_unet import (
    STUDENT_KV_DOWNSAMPLE,
    Report,
    RoundStats,
    _choices,
    _median_range,
    machine_description,
    md_table,
    sd_unet_config,
    unet_inputs,
)
from cost_measurement import CLEAN_LOAD, CudaEventTimer, ModuleTimer, count_macs, peak_memory_rise, time_interleaved

if TYPE_CHECKING:  # heavy imports stay inside functions so that `--help` answers at once
    import torch
    from torch import nn

VERSIONS = ("sd21", "sd15")
VERSION_NAMES = {"sd21": "SD 2.1 + OpenCLIP-H (released)", "sd15": "SD 1.5 + CLIP-L"}
MODES = ("default", "fast")
MODE_NAMES = {"default": "SD VAE encoder", "fast": "AutoencoderTiny encoder"}
DTYPES = ("fp32", "bf16")
REFERENCE = "ours sd21 default"  # what every ratio is to: the released configuration as it ships
FAST_SPEEDUP_TARGET = 3.0  # fast mode at least 3x faster than the default mode end to end (bf16)
MATTE_ANYTHING_TARGET = 3.5  # the default mode at least 3.5x faster than Matte Anything
PROMPT_TOKENS = 77
GROUNDING_TOKENS = 9  # "the red chair made of wood ." as BERT / CLIP word pieces, with the special tokens
UNCERTAIN_SHARE = 0.05  # of the refiner's pixels (what benchmark_highres.py measures at)
GIB = 1024**3

# Text encoders of stabilityai/stable-diffusion-2-1-base (OpenCLIP ViT-H/14, 23 of its 24 layers, as SD 2.x uses
# the penultimate one) and stable-diffusion-v1-5 (CLIP ViT-L/14), as transformers' CLIPTextConfig names them.
TEXT_ENCODER_CONFIGS = {
    "sd21": dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                 projection_dim=512, hidden_act="gelu"),
    "sd15": dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 projection_dim=768, hidden_act="quick_gelu"),
}  # fmt: skip
CLIP_VOCAB_SIZE = 49408
# The SD VAE (the same for SD 1.5 and 2.1).
SD_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
# A tiny encoder whose factor (2) matches the tests' VAE, for --quick.
QUICK_TINY_VAE_CONFIG = dict(
    encoder_block_out_channels=(8, 8),
    decoder_block_out_channels=(8, 8),
    num_encoder_blocks=(1, 1),
    num_decoder_blocks=(1, 1),
)


@dataclass(frozen=True)
class Sizes:
    """Input sides in pixels of each model (full size, or --quick)."""

    ours: int = 512
    grounding_dino: int = 800  # its 800-short-side resize of a square image
    sam: int = 1024
    vitmatte: int = 512
    clipseg: int = 352
    refiner: int = 2048


QUICK_SIZES = Sizes(ours=32, grounding_dino=128, sam=64, vitmatte=64, clipseg=64, refiner=512)

# Cascades by their components' unit names.
CASCADES = {
    "Matte Anything (GroundingDINO-T + SAM-H + ViTMatte-B)": ("GroundingDINO-T", "SAM-H", "ViTMatte-B"),
    "MAM ~ GroundingDINO-T + SAM-H (M2M head not built)": ("GroundingDINO-T", "SAM-H"),
    "CLIPSeg + ViTMatte-S": ("CLIPSeg", "ViTMatte-S"),
}
HIGH_RES = f"{REFERENCE}, 2048 input: + refiner (sum)"


# ---------------------------------------------------------------------------------------------------------
# Timed units


class TimedUnit:
    """One timed call: `call()` on inputs bound in advance.

    The models it runs are children of `module` (an `nn.Module` made for the purpose, which `time_interleaved` and
    `count_macs` call), so that `ModuleTimer` finds its stages by name (`stages`: label -> module names under
    `module`). `count_all_parts`: its parameters are those of all its models, not of its stages only. On CUDA, a
    call waits for the device before it returns.
    """

    def __init__(
        self,
        call: Callable[[], Any],
        parts: dict[str, nn.Module],
        stages: dict[str, tuple[str, ...]],
        device_type: str = "cpu",
        count_all_parts: bool = False,
    ):
        from torch import nn

        class Unit(nn.Module):
            def forward(self, return_dict: bool = False):
                out = call()
                if device_type == "cuda":
                    import torch

                    torch.cuda.synchronize()
                return out

        self.module = Unit()
        self.module.parts = nn.ModuleDict(parts)  # registers the models, shared ones included; copies nothing
        self.stages, self.count_all_parts = stages, count_all_parts

    @property
    def stage_modules(self) -> list[str]:
        return [name for names in self.stages.values() for name in names]

    def weight_bytes(self) -> int:
        """Bytes of the parameters and buffers of the modules it runs (an unused VAE decoder is not counted)."""
        tensors = {id(t): t for m in self._used_modules() for t in (*m.parameters(), *m.buffers())}
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def num_parameters(self, stage: str | None = None) -> int:
        modules = self._used_modules(stage)
        return sum(p.numel() for p in {id(p): p for m in modules for p in m.parameters()}.values())

    def _used_modules(self, stage: str | None = None) -> list[nn.Module]:
        named = dict(self.module.named_modules())
        if stage is not None:
            return [named[n] for n in self.stages[stage]]
        if self.count_all_parts:
            return list(self.module.parts.values())
        return [named[n] for n in self.stage_modules]


def ours_unit(pipe, size: int, batch: int, device: torch.device) -> TimedUnit:
    """A pipeline call on `batch` images of `size` x `size`, one prompt each, all in one batch."""
    import torch

    generator = torch.Generator().manual_seed(batch)
    images = torch.rand(batch, 3, size, size, generator=generator).to(device)
    prompts = [f"the red chair made of wood, number {i}" for i in range(batch)]
    prompt = prompts[0] if batch == 1 else prompts

    def call():
        return pipe(images, prompt, batch_size=batch, output_type="pt", return_dict=False)

    encoder = ("vae.encoder", "vae.quant_conv") if hasattr(pipe.vae, "quant_conv") else ("vae.encoder",)
    stages = {
        "text encoder": ("text_encoder",),
        "text adapter": ("text_adapter",),
        "image encoder": encoder,
        "UNet": ("unet",),
        "matting decoder": ("matting_decoder",),
    }
    parts = {name: getattr(pipe, name) for name in ("text_encoder", "text_adapter", "vae", "unet", "matting_decoder")}
    stages = {label: tuple(f"parts.{n}" for n in names) for label, names in stages.items()}
    return TimedUnit(call, parts, stages, device_type=device.type)


def peer_unit(model: nn.Module, kwargs: dict[str, Any], stages: dict[str, str], device: torch.device) -> TimedUnit:
    """A transformers model called on `kwargs`; `stages` names its submodules worth timing on their own."""

    def call():
        return model(**kwargs, return_dict=False)

    return TimedUnit(
        call,
        {"model": model},
        {label: (f"parts.model.{name}",) for label, name in stages.items()},
        device_type=device.type,
        count_all_parts=True,
    )


def refiner_unit(refiner: nn.Module, size: int, dtype: torch.dtype, device: torch.device) -> TimedUnit:
    """The refiner lifting a 512x512 alpha to `size` x `size`, with about 5% uncertain pixels."""
    from benchmark_highres import make_inputs

    image, alpha, context = (t.to(dtype) for t in make_inputs(size, UNCERTAIN_SHARE, device))

    def call():
        return refiner(image, alpha, context, return_dict=False)

    return TimedUnit(call, {"refiner": refiner}, {"refiner": ("parts.refiner",)}, device_type=device.type)


# ---------------------------------------------------------------------------------------------------------
# Models


@dataclass
class Models:
    """Everything the benchmark runs, built once in fp32 and cast in place."""

    pipelines: dict[str, Any] = field(default_factory=dict)  # "ours sd21 default" -> pipeline
    peers: dict[str, nn.Module] = field(default_factory=dict)
    refiner: nn.Module | None = None

    def modules(self) -> list[nn.Module]:
        found = {}
        for pipe in self.pipelines.values():
            for component in pipe.components.values():
                if hasattr(component, "parameters"):
                    found[id(component)] = component
        for model in (*self.peers.values(), self.refiner):
            found[id(model)] = model
        return list(found.values())

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        for module in self.modules():
            module.to(device, dtype)


def build_student(unet_config: dict) -> nn.Module:
    """The paper's student: BK-SDM tiny pruned from a region-head teacher, with the section 3.3 self-attention."""
    from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel

    teacher = MatteUNet2DConditionModel(**unet_config, prediction_head="region")
    return MatteUNet2DConditionModel.from_teacher(
        teacher, "tiny", prediction_head="matte", self_attention_kv_downsample=STUDENT_KV_DOWNSAMPLE
    ).eval()


def build_text_encoder(version: str, tokenizer) -> nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        **TEXT_ENCODER_CONFIGS[version],
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=PROMPT_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config).eval()


def build_ours(versions: Sequence[str], modes: Sequence[str], quick: bool, seed: int) -> dict[str, Any]:
    """The pipelines `ours <version> <mode>`. The image encoders and the matting decoder are shared between the
    versions (the same models at the same sizes), the text encoder and the UNet between the modes of a version."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny

    from diffusers_matte.models.matting_decoder import MattingDecoder
    from diffusers_matte.models.text_adapter import TextAdapter
    from diffusers_matte.pipelines import SoftGroundingMattingPipeline
    from diffusers_matte.testing import get_dummy_components, get_dummy_tokenizer

    torch.manual_seed(seed)
    if quick:
        shared = get_dummy_components(seed)
        image_encoders = {"default": shared["vae"], "fast": AutoencoderTiny(**QUICK_TINY_VAE_CONFIG)}
        decoder = shared["matting_decoder"]
    else:
        image_encoders = {"default": AutoencoderKL(**SD_VAE_CONFIG), "fast": AutoencoderTiny()}
        decoder = MattingDecoder(feature_channels=sd_unet_config("sd21")["block_out_channels"][0])
    pipelines = {}
    for version in versions:
        if quick:
            parts = {k: shared[k] for k in ("text_encoder", "tokenizer", "text_adapter", "unet")}
        else:
            tokenizer = get_dummy_tokenizer(model_max_length=PROMPT_TOKENS)  # every prompt is padded to 77 tokens
            text_encoder = build_text_encoder(version, tokenizer)
            parts = {
                "text_encoder": text_encoder,
                "tokenizer": tokenizer,
                "text_adapter": TextAdapter(embed_dim=text_encoder.config.hidden_size),
                "unet": build_student(sd_unet_config(version)),
            }
        for mode in modes:
            pipe = SoftGroundingMattingPipeline(
                vae=image_encoders[mode].eval(),
                matting_decoder=decoder.eval(),
                default_processing_resolution=QUICK_SIZES.ours if quick else Sizes.ours,
                **parts,
            )
            pipe.set_progress_bar_config(disable=True)
            pipelines[f"ours {version} {mode}"] = pipe
        gc.collect()
    return pipelines


def grounding_dino_config(quick: bool):
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if not quick:
        return GroundingDinoConfig()  # grounding-dino-tiny: Swin-T, BERT-base, 900 queries, 6 + 6 layers
    return GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1] * 4, num_heads=[1] * 4, out_indices=[2, 3, 4],
                                   window_size=2, image_size=QUICK_SIZES.grounding_dino),
        text_config=BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                               vocab_size=100, max_position_embeddings=32),
        d_model=32, encoder_layers=1, decoder_layers=2, num_queries=8, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, max_text_len=32,
    )  # fmt: skip


def sam_config(quick: bool):
    from transformers import SamConfig, SamVisionConfig

    if not quick:  # SAM ViT-H, as transformers' conversion script builds it
        return SamConfig(
            vision_config=SamVisionConfig(
                hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, global_attn_indexes=[7, 15, 23, 31]
            )
        )
    side, patch = QUICK_SIZES.sam, 16
    return SamConfig(
        vision_config=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1],
                           image_size=side, patch_size=patch, output_channels=8, mlp_dim=32, window_size=2,
                           num_pos_feats=4),
        prompt_encoder_config=dict(hidden_size=8, image_size=side, patch_size=patch, mask_input_channels=4,
                                   image_embedding_size=side // patch),
        mask_decoder_config=dict(hidden_size=8, mlp_dim=16, num_hidden_layers=1, num_attention_heads=2,
                                 iou_head_hidden_dim=8),
    )  # fmt: skip


def vitmatte_config(width: str, quick: bool):
    """ViTMatte-S (384 wide, 6 heads) or -B (768, 12) on a 4-channel image + trimap input."""
    from transformers import VitDetConfig, VitMatteConfig

    if quick:
        backbone = VitDetConfig(num_channels=4, image_size=QUICK_SIZES.vitmatte, pretrain_image_size=32, patch_size=16,
                                window_size=2, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                                window_block_indices=[0], residual_block_indices=[1], out_features=["stage2"],
                                use_absolute_position_embeddings=True, use_relative_position_embeddings=True)  # fmt: skip
        return VitMatteConfig(backbone_config=backbone, hidden_size=16, convstream_hidden_sizes=[4, 8, 8],
                              fusion_hidden_sizes=[8, 8, 4, 4])  # fmt: skip
    hidden, heads = {"S": (384, 6), "B": (768, 12)}[width]
    backbone = VitDetConfig(
        num_channels=4,
        image_size=Sizes.vitmatte,
        pretrain_image_size=224,
        patch_size=16,
        window_size=14,
        hidden_size=hidden,
        num_attention_heads=heads,
        window_block_indices=[0, 1, 3, 4, 6, 7, 9, 10],
        residual_block_indices=[2, 5, 8, 11],
        use_absolute_position_embeddings=True,
        use_relative_position_embeddings=True,
        out_features=["stage12"],
    )
    # lists, not tuples: VitMatteConfig's tuple defaults fail its own checks in transformers 5.24
    return VitMatteConfig(
        backbone_config=backbone,
        hidden_size=hidden,
        convstream_hidden_sizes=[48, 96, 192],
        fusion_hidden_sizes=[256, 128, 64, 32],
    )


def clipseg_config(quick: bool):
    from transformers import CLIPSegConfig

    if not quick:
        return CLIPSegConfig(vision_config={"patch_size": 16})  # CLIPSeg's ViT-B/16
    return CLIPSegConfig(
        text_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2,
                           image_size=QUICK_SIZES.clipseg, patch_size=16),
        projection_dim=16, reduce_dim=8, extract_layers=[0, 1, 2], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )  # fmt: skip


def build_peers(quick: bool, seed: int) -> dict[str, nn.Module]:
    """The cascades' components, from transformers' own classes with random weights."""
    import torch
    from transformers import (
        CLIPSegForImageSegmentation,
        GroundingDinoForObjectDetection,
        SamModel,
        VitMatteForImageMatting,
    )

    torch.manual_seed(seed)
    peers = {
        "GroundingDINO-T": GroundingDinoForObjectDetection(grounding_dino_config(quick)),
        "SAM-H": SamModel(sam_config(quick)),
        "ViTMatte-B": VitMatteForImageMatting(vitmatte_config("B", quick)),
        "ViTMatte-S": VitMatteForImageMatting(vitmatte_config("S", quick)),
        "CLIPSeg": CLIPSegForImageSegmentation(clipseg_config(quick)),
    }
    return {name: model.eval() for name, model in peers.items()}


def peer_units(
    peers: dict[str, nn.Module], sizes: Sizes, batch: int, dtype: torch.dtype, device: torch.device, seed: int
) -> dict[str, TimedUnit]:
    """Each component on inputs of its own resolution: images in its dtype, 9 text tokens, one box for SAM."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def image(side: int, channels: int = 3) -> torch.Tensor:
        return torch.rand(batch, channels, side, side, generator=generator).to(device, dtype)

    def tokens(model) -> torch.Tensor:
        vocab = getattr(model.config, "text_config", model.config).vocab_size
        return torch.randint(3, vocab, (batch, GROUNDING_TOKENS), generator=generator).to(device)

    gdino_ids = tokens(peers["GroundingDINO-T"])
    box = torch.tensor([[[0.2, 0.2, 0.7, 0.8]]]) * sizes.sam
    inputs = {
        "GroundingDINO-T": (
            dict(pixel_values=image(sizes.grounding_dino), input_ids=gdino_ids, attention_mask=torch.ones_like(gdino_ids)),
            {"Swin-T backbone": "model.backbone", "BERT text encoder": "model.text_backbone"},
        ),
        "SAM-H": (
            dict(pixel_values=image(sizes.sam), input_boxes=box.repeat(batch, 1, 1).to(device, dtype),
                 multimask_output=False),
            {"image encoder": "vision_encoder", "prompt encoder": "prompt_encoder", "mask decoder": "mask_decoder"},
        ),
        "ViTMatte-B": (dict(pixel_values=image(sizes.vitmatte, 4)), {"ViT backbone": "backbone"}),
        "ViTMatte-S": (dict(pixel_values=image(sizes.vitmatte, 4)), {"ViT backbone": "backbone"}),
        "CLIPSeg": (
            dict(input_ids=tokens(peers["CLIPSeg"]), pixel_values=image(sizes.clipseg)),
            {"CLIP vision": "clip.vision_model", "CLIP text": "clip.text_model", "decoder": "decoder"},
        ),
    }  # fmt: skip
    return {name: peer_unit(peers[name], *inputs[name], device) for name in peers}


def make_units(models: Models, args: argparse.Namespace, sizes: Sizes, dtype: torch.dtype, batch: int) -> dict:
    """The units of one (dtype, batch): our pipelines (above batch 1, those of `--batch_versions`), the refiner at
    batch 1, and the cascades' components at `--peer_batch_sizes`."""
    units = {
        name: ours_unit(pipe, sizes.ours, batch, args.device)
        for name, pipe in models.pipelines.items()
        if batch == 1 or name.split()[1] in args.batch_versions
    }
    if batch == 1:
        units["refiner"] = refiner_unit(models.refiner, sizes.refiner, dtype, args.device)
    if models.peers and batch in args.peer_batch_sizes:
        units.update(peer_units(models.peers, sizes, batch, dtype, args.device, args.seed))
    return units


# ---------------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Timing:
    """The interleaved rounds of one (dtype, batch) and what was measured beside them."""

    dtype: str
    batch: int
    units: dict[str, TimedUnit]
    stats: RoundStats
    memory_rise: dict[str, int]
    weights: dict[str, int]  # bytes, in this dtype (the models are cast in place afterwards)
    no_nan: dict[str, bool]

    def seconds(self, name: str) -> list[float]:
        """Per round: the unit's call, or the sum of a composite's components."""
        parts = composite_parts(name)
        return [sum(self.stats.by_round[r][p].measured.seconds for p in parts) for r in self.stats.rounds]

    def ratios(self, name: str) -> list[float]:
        """Per round: `name`'s time over ours (released configuration, default mode) in the same round."""
        return [a / b for a, b in zip(self.seconds(name), self.seconds(REFERENCE))]

    def stage_ms(self, unit: str, stage: str) -> float:
        names = self.units[unit].stages[stage]
        per_round = [
            sum(self.stats.by_round[r][unit].module_times.get(n, 0.0) for n in names) for r in self.stats.rounds
        ]
        return 1e3 * statistics.median(per_round)

    def has(self, name: str) -> bool:
        return all(p in self.units for p in composite_parts(name))


def composite_parts(name: str) -> tuple[str, ...]:
    if name in CASCADES:
        return CASCADES[name]
    if name == HIGH_RES:
        return (REFERENCE, "refiner")
    return (name,)


def no_nan(output: Any) -> bool:
    """Whether the tensors of `output` hold no NaN (infinities are fine: GroundingDINO masks the logits of padded
    text positions with -inf)."""
    import torch

    if isinstance(output, torch.Tensor):
        return not bool(torch.isnan(output).any()) if output.is_floating_point() else True
    if isinstance(output, (list, tuple)):
        return all(no_nan(o) for o in output)
    return True


def _gmacs(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def measure(units: dict[str, TimedUnit], args: argparse.Namespace, dtype: str, batch: int) -> Timing:
    """One untimed call per unit (the warm-up, with its memory peak and a check of its outputs), then the
    interleaved rounds."""
    import torch

    rise, clean = {}, {}
    with torch.inference_mode():
        for name, unit in units.items():
            outputs = []
            rise[name] = peak_memory_rise(lambda: outputs.append(unit.module()), args.device.type)
            clean[name] = no_nan(outputs[0])
            for _ in range(args.warmup - 1):
                unit.module()
    records, _ = time_interleaved(
        {name: unit.module for name, unit in units.items()},
        dict.fromkeys(units, ()),
        args.rounds,
        warmup=0,
        timed_modules={name: unit.stage_modules for name, unit in units.items()},
        min_clean_rounds=0,
        quiet_wait=args.quiet_wait,
        progress=f"{dtype} batch {batch}",
        timer_class=CudaEventTimer if args.device.type == "cuda" else ModuleTimer,
    )
    weights = {name: unit.weight_bytes() for name, unit in units.items()}
    return Timing(dtype, batch, units, RoundStats(records), rise, weights, clean)


def count_unit_macs(units: dict[str, TimedUnit]) -> dict[str, dict[str, float]]:
    """GMACs per unit and per stage at batch 1 (attention matmuls counted)."""
    found = {}
    for name, unit in units.items():
        macs = count_macs(unit.module)
        row = {"total": macs.total / 1e9}
        for stage, names in unit.stages.items():
            row[stage] = sum(macs.by_module.get(n, 0) for n in names) / 1e9
        found[name] = row
    return found


# ---------------------------------------------------------------------------------------------------------
# Report


def _ms(seconds: Sequence[float]) -> str:
    return _median_range([1e3 * s for s in seconds], "{:.0f}")


def report_timing(report: Report, timing: Timing, macs: dict[str, dict[str, float]], labels: dict[str, str]) -> None:
    """End to end, per stage and per component, for one (dtype, batch)."""
    stats, batch = timing.stats, timing.batch
    loads = [stats.load(r) for r in stats.rounds]
    report.add(f"### {timing.dtype}, batch {batch}")
    report.add()
    report.add(
        f"{len(stats.rounds)} interleaved rounds; foreign CPU load (CPUs busy with other processes, of "
        f"{os.cpu_count()}) per round: median {statistics.median(loads):.2f}, range {min(loads):.2f}-"
        f"{max(loads):.2f}; {len(stats.clean_rounds)} clean round(s) (every call below {CLEAN_LOAD})."
    )
    report.add()
    names = [n for n in timing.units if n.startswith("ours")]
    names += [c for c in (*CASCADES, HIGH_RES) if timing.has(c)]
    rows = []
    for name in names:
        parts = composite_parts(name)
        weights = sum(timing.weights[p] for p in parts)
        peak = max(timing.memory_rise[p] for p in parts) + weights  # all of a cascade's models stay resident
        gmacs = sum(macs.get(p, {}).get("total", float("nan")) for p in parts)
        rows.append(
            (
                labels.get(name, name),
                _median_range(timing.seconds(name)),
                f"{statistics.median(timing.seconds(name)) / batch:.3f}",
                _median_range(timing.ratios(name), "{:.2f}"),
                _gmacs(gmacs),
                f"{sum(timing.units[p].num_parameters() for p in parts) / 1e6:.1f}",
                f"{peak / GIB:.2f} ({weights / GIB:.2f} + {max(timing.memory_rise[p] for p in parts) / GIB:.2f})",
                "yes" if all(timing.no_nan[p] for p in parts) else "NO",
            )
        )
    report.add(
        md_table(
            (
                "",
                "seconds per call, median [min-max]",
                "s per image",
                f"x {REFERENCE} (per-round ratios)",
                "GMACs per image",
                "parameters M",
                "peak memory GiB (weights + rise)",
                "outputs without NaN",
            ),
            rows,
        )
    )
    report.add()
    report_stages(report, timing, macs)
    report_components(report, timing)


def report_stages(report: Report, timing: Timing, macs: dict[str, dict[str, float]]) -> None:
    ours = [n for n in timing.units if n.startswith("ours")]
    if not ours:
        return
    stages = list(timing.units[ours[0]].stages)
    rows = []
    for stage in stages:
        cells = [stage]
        for name in ours:
            ms = timing.stage_ms(name, stage)
            total = 1e3 * statistics.median(timing.seconds(name))
            gmacs = macs.get(name, {}).get(stage)
            cells.append(
                f"{ms:.0f} ({100 * ms / total:.0f}%)" + (f", {_gmacs(gmacs)} GMACs" if gmacs is not None else "")
            )
        rows.append(cells)
    rest = ["rest (pre- and post-processing, posterior, glue)"]
    for name in ours:
        total = 1e3 * statistics.median(timing.seconds(name))
        staged = sum(timing.stage_ms(name, s) for s in stages)
        rest.append(f"{total - staged:.0f} ({100 * (total - staged) / total:.0f}%)")
    rows.append(rest)
    rows.append(["end to end", *(_ms(timing.seconds(n)) for n in ours)])
    report.add(f"Where our time goes ({timing.dtype}, batch {timing.batch}; median ms per call, share of the call):")
    report.add()
    report.add(md_table(("stage", *ours), rows))
    report.add()


def report_components(report: Report, timing: Timing) -> None:
    rows = []
    for name, unit in timing.units.items():
        if name.startswith("ours"):
            continue
        stages = "; ".join(f"{label} {timing.stage_ms(name, label):.0f}" for label in unit.stages)
        rows.append((name, _ms(timing.seconds(name)), stages or "-"))
    if rows:
        report.add(f"Components ({timing.dtype}, batch {timing.batch}; ms per call, median [min-max]):")
        report.add()
        report.add(md_table(("component", "ms", "of which, median ms"), rows))
        report.add()


def report_macs(report: Report, macs: dict[str, dict[str, float]], units: dict[str, TimedUnit]) -> None:
    rows = []
    for name, row in macs.items():
        unit = units[name]
        stages = "; ".join(
            f"{stage} {_gmacs(row[stage])} ({unit.num_parameters(stage) / 1e6:.1f}M)" for stage in unit.stages
        )
        rows.append((name, _gmacs(row["total"]), f"{unit.num_parameters() / 1e6:.2f}", stages))
    report.add("## GMACs and parameters at batch 1")
    report.add()
    report.add(
        "`FlopCounterMode` with the SDPA cores counted from their shapes (`cost_measurement.count_macs`). "
        "GroundingDINO's `grid_sample` (deformable attention) has no formula and is not counted (about 1.4 GMACs "
        "at 800x800 by a bilinear estimate). Ours: parameters of the modules the pipeline runs (the VAE decoder is "
        "not)."
    )
    report.add()
    report.add(md_table(("unit", "GMACs", "parameters M", "by stage: GMACs (parameters)"), rows))
    report.add()


# ---------------------------------------------------------------------------------------------------------
# Speed options


SPEED_OPTIONS = ("channels_last", "autocast", "sdpa_math", "compile")


@dataclass
class SpeedVariant:
    """One model under one speed option, and the eager model of the same dtype it is compared with."""

    model: Callable
    inputs: tuple
    base: str
    contexts: tuple[Callable, ...] = ()


def speed_models(args: argparse.Namespace) -> dict[str, nn.Module]:
    """The student UNet of the released configuration and both image encoders, fp32, random weights."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny

    from diffusers_matte.testing import get_dummy_components, get_dummy_unet_init_dict

    torch.manual_seed(args.seed)
    if args.quick:
        return {
            "UNet": build_student(get_dummy_unet_init_dict()),
            "SD VAE encoder": get_dummy_components(args.seed)["vae"],
            "AutoencoderTiny encoder": AutoencoderTiny(**QUICK_TINY_VAE_CONFIG).eval(),
        }
    return {
        "UNet": build_student(sd_unet_config("sd21")),
        "SD VAE encoder": AutoencoderKL(**SD_VAE_CONFIG).eval(),
        "AutoencoderTiny encoder": AutoencoderTiny().eval(),
    }


def speed_variants(args: argparse.Namespace) -> dict[str, SpeedVariant]:
    """Each model eager in each dtype, and under each of `--speed_options`."""
    import copy

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    device = args.device
    side = QUICK_SIZES.ours if args.quick else Sizes.ours
    compile_dtype = "bf16" if "bf16" in args.dtypes else args.dtypes[0]  # compiling takes minutes on this CPU
    variants = {}
    for model_name, model in speed_models(args).items():
        if model_name == "UNet":
            fp32_inputs = unet_inputs(model, torch.float32, seed=args.seed)  # 64x64 latent, 77 tokens
        else:
            fp32_inputs = (torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(args.seed)),)
        copies = {}
        for dtype_name in args.dtypes:
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
            inputs = tuple(t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in fp32_inputs)
            copies[dtype_name] = eager = copy.deepcopy(model).to(device, dtype)
            base = f"{model_name}, {dtype_name}, eager"
            variants[base] = SpeedVariant(_forward_of(model_name, eager), inputs, base)
            if "channels_last" in args.speed_options:
                # what the pipeline does on CPU (`cpu_channels_last`): the activations in channels_last, the
                # weights as they are; against "eager", which the pipeline no longer runs
                last_inputs = tuple(
                    t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in inputs
                )
                variants[f"{model_name}, {dtype_name}, channels_last"] = SpeedVariant(
                    _forward_of(model_name, eager), last_inputs, base
                )
            if "sdpa_math" in args.speed_options and model_name == "UNet":
                variants[f"{model_name}, {dtype_name}, SDPA math backend"] = SpeedVariant(
                    _forward_of(model_name, eager), inputs, base, (lambda: sdpa_kernel(SDPBackend.MATH),)
                )
            if "compile" in args.speed_options and model_name == "UNet" and dtype_name == compile_dtype:
                variants[f"{model_name}, {dtype_name}, torch.compile"] = SpeedVariant(
                    _forward_of(model_name, torch.compile(eager)), inputs, base
                )
        if "autocast" in args.speed_options and "bf16" in args.dtypes:
            weights = copies.get("fp32") or copy.deepcopy(model).to(device)
            inputs = tuple(t.to(device) for t in fp32_inputs)
            variants[f"{model_name}, fp32 weights, bf16 autocast"] = SpeedVariant(
                _forward_of(model_name, weights),
                inputs,
                f"{model_name}, bf16, eager",
                (lambda: torch.autocast(device.type, dtype=torch.bfloat16),),
            )
    return variants


def _forward_of(model_name: str, model: Callable) -> Callable:
    """What the pipeline computes with the model: the UNet's output, or an image encoder's latent (the posterior
    mode of the SD VAE)."""
    if model_name == "UNet":
        return lambda *inputs: model(*inputs, return_dict=False)

    def encode(pixels):
        out = model.encode(pixels)
        return out.latent_dist.mode() if hasattr(out, "latent_dist") else out.latents

    return encode


def speed_unit(variant: SpeedVariant, device: torch.device) -> TimedUnit:
    def call():
        with contextlib.ExitStack() as stack:
            for context in variant.contexts:
                stack.enter_context(context())
            return variant.model(*variant.inputs)

    return TimedUnit(call, {}, {}, device_type=device.type)


def run_speed_options(args: argparse.Namespace, report: Report) -> None:
    """Time every variant interleaved, after an untimed first call (which compiles, for `torch.compile`)."""
    import torch

    variants = speed_variants(args)
    units = {name: speed_unit(variant, args.device) for name, variant in variants.items()}
    first_call, clean = {}, {}
    with torch.inference_mode():
        for name, unit in units.items():
            started = time.perf_counter()
            clean[name] = no_nan(unit.module())
            first_call[name] = time.perf_counter() - started
    records, _ = time_interleaved(
        {name: unit.module for name, unit in units.items()},
        dict.fromkeys(units, ()),
        args.speed_rounds,
        warmup=0,
        timed_modules=dict.fromkeys(units, []),
        min_clean_rounds=0,
        quiet_wait=args.quiet_wait,
        progress="speed options",
    )
    stats = RoundStats(records)
    loads = [stats.load(r) for r in stats.rounds]
    report.add("## CPU speed options")
    report.add()
    report.add(
        f"The student UNet of the released configuration (SD 2.1, 64x64 latent, 77 tokens) and both image "
        f"encoders (512x512 image), batch 1, `torch.inference_mode()`, {len(stats.rounds)} interleaved rounds "
        f"(foreign load per round {min(loads):.2f}-{max(loads):.2f} CPUs). Ratio: median of the per-round ratios "
        "to the eager model of the same dtype (autocast: to the bf16-weights eager model); below 1 is faster. "
        "First call: the untimed first call, which for `torch.compile` includes compiling."
    )
    report.add()
    rows = []
    for name, variant in variants.items():
        seconds = stats.seconds(name)
        ratio = [a / b for a, b in zip(seconds, stats.seconds(variant.base))]
        rows.append(
            (
                name,
                _ms(seconds),
                "1" if name == variant.base else _median_range(ratio, "{:.3f}"),
                f"{first_call[name]:.1f}",
                "yes" if clean[name] else "NO",
            )
        )
    report.add(md_table(("model, dtype, variant", "ms, median [min-max]", "/ eager", "first call s", "no NaN"), rows))
    report.add()


# ---------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--versions", default="sd21,sd15", help="comma-separated among sd21, sd15 (default: both)")
    parser.add_argument("--modes", default="default,fast", help="comma-separated among default, fast (default: both)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated among fp32, bf16 (default: both)")
    parser.add_argument("--batch_sizes", default="1,4", help="comma-separated batch sizes of ours (default: 1,4)")
    parser.add_argument(
        "--batch_versions",
        default="sd21",
        help="versions timed at the batch sizes above 1 too (default: sd21, the released configuration)",
    )
    parser.add_argument(
        "--batch_dtypes",
        default=None,
        help="dtypes in which the batch sizes above 1 are timed (default: all of --dtypes)",
    )
    parser.add_argument(
        "--peer_batch_sizes",
        default="1",
        help="batch sizes at which the cascades run too (default: 1; SAM-H takes about 30 s an image in fp32 here)",
    )
    parser.add_argument("--no_peers", action="store_true", help="time our pipelines only")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved timing rounds per dtype and batch (default: 3)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per unit before timing (default: 1)")
    parser.add_argument(
        "--quiet-wait",
        dest="quiet_wait",
        type=float,
        default=0.0,
        help=f"before each round, wait up to this many seconds for a second in which other processes use less than "
        f"{CLEAN_LOAD} CPUs (default: 0)",
    )
    parser.add_argument(
        "--speed_options",
        nargs="?",
        const=",".join(SPEED_OPTIONS),
        default="",
        help=f"also time the student UNet and both image encoders under these CPU speed options, comma-separated "
        f"among {', '.join(SPEED_OPTIONS)} (the flag alone: all; compile: the UNet, in bf16 if timed)",
    )
    parser.add_argument(
        "--speed_rounds", type=int, default=3, help="interleaved rounds of --speed_options (default: 3)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--quick", action="store_true", help="tiny models and inputs: checks the script in seconds")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("benchmarks/results/pipeline_cpu.md"),
        help="markdown file to write (default: benchmarks/results/pipeline_cpu.md)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.versions = _choices(parser, "--versions", args.versions, VERSIONS)
    args.modes = _choices(parser, "--modes", args.modes, MODES)
    args.dtypes = _choices(parser, "--dtypes", args.dtypes, DTYPES)
    if "sd21" not in args.versions or "default" not in args.modes:
        parser.error(f"every ratio is to {REFERENCE!r}: --versions needs sd21 and --modes needs default.")
    args.batch_versions = _choices(parser, "--batch_versions", args.batch_versions, args.versions)
    args.batch_dtypes = _choices(parser, "--batch_dtypes", args.batch_dtypes or ",".join(args.dtypes), args.dtypes)
    args.speed_options = (
        _choices(parser, "--speed_options", args.speed_options, SPEED_OPTIONS) if args.speed_options else []
    )
    for flag in ("batch_sizes", "peer_batch_sizes"):
        value = getattr(args, flag)
        try:
            sizes = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            parser.error(f"--{flag} takes comma-separated positive integers; got {value!r}.")
        setattr(args, flag, sizes)
    if 1 not in args.batch_sizes:
        parser.error("--batch_sizes needs 1: the MACs, the refiner and the summary are at batch 1.")
    for flag in ("rounds", "warmup", "speed_rounds", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}.")
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}.")
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it or choose another --output.")
    return args


def _header(report: Report, args: argparse.Namespace, argv: Sequence[str] | None, side: int) -> None:
    command = "python benchmarks/benchmark_pipeline.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ)
    report.add("# The whole pipeline against the cascades" + (" (--quick: tiny models)" if args.quick else ""))
    report.add()
    report.add(f"Command: `{(env + ' ' if env else '') + command.strip()}`")
    report.add()
    report.add(
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {args.device}, "
        f"{machine_description(args.threads)}."
    )
    report.add(
        "Random weights; costs depend on architectures and shapes, not on weights. Ours: the pipeline's own "
        f"`__call__` on a {side}x{side} image and one prompt per image (77 tokens), `output_type='pt'`; ratios are the "
        f"median over rounds of each unit's (or cascade's) time over `{REFERENCE}` in the same round."
    )
    report.add()


def build_models(args: argparse.Namespace) -> Models:
    from benchmark_highres import make_refiner

    started = time.perf_counter()
    models = Models(pipelines=build_ours(args.versions, args.modes, args.quick, args.seed))
    if not args.no_peers:
        models.peers = build_peers(args.quick, args.seed)
    models.refiner = make_refiner(args.device)  # benchmark_highres's: random, its last layers made to act
    print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return models


def measure_all(models: Models, args: argparse.Namespace, sizes: Sizes) -> tuple[list[Timing], dict, dict]:
    """Every (dtype, batch), then the MACs at batch 1 counted in the faster dtype (they do not depend on it)."""
    import torch

    macs_dtype = "bf16" if "bf16" in args.dtypes else args.dtypes[0]
    timings, macs, macs_units = [], {}, {}
    for dtype_name in args.dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        models.to(args.device, dtype)
        for batch in args.batch_sizes:
            if batch > 1 and dtype_name not in args.batch_dtypes:
                continue
            units = make_units(models, args, sizes, dtype, batch)
            if batch == 1 and dtype_name == macs_dtype:
                macs, macs_units = count_unit_macs(units), units
            timings.append(measure(units, args, dtype_name, batch))
    return timings, macs, macs_units


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(args.threads)
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    args.device = torch.device(args.device)
    report = Report()
    sizes = QUICK_SIZES if args.quick else Sizes()
    _header(report, args, argv, sizes.ours)

    models = build_models(args)
    timings, macs, macs_units = measure_all(models, args, sizes)
    report_macs(report, macs, macs_units)
    report.add("## Latency")
    report.add()
    labels = {f"ours {v} {m}": f"ours {v} {m}: {VERSION_NAMES[v]}, {MODE_NAMES[m]}" for v in VERSIONS for m in MODES}
    for timing in timings:
        report_timing(report, timing, macs, labels)
    report_summary(report, timings, macs)
    write_report(report, args.output)  # kept if the speed options are stopped
    del models, timings, macs_units
    gc.collect()
    if args.speed_options:
        run_speed_options(args, report)
        write_report(report, args.output)


def write_report(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.text())
    print(f"Wrote {path}", file=sys.stderr)


def report_summary(report: Report, timings: list[Timing], macs: dict[str, dict[str, float]]) -> None:
    """Batch 1, every dtype: end-to-end seconds and ratios to ours, and the targets."""
    at_1 = [t for t in timings if t.batch == 1]
    if not at_1:
        return
    names = [n for n in at_1[0].units if n.startswith("ours")] + [c for c in CASCADES if at_1[0].has(c)]
    rows = []
    for name in names:
        cells = [name]
        for timing in at_1:
            cells.append(
                f"{statistics.median(timing.seconds(name)):.2f} s, x{statistics.median(timing.ratios(name)):.2f}"
            )
        gmacs = sum(macs.get(p, {}).get("total", float("nan")) for p in composite_parts(name))
        cells.append(f"{_gmacs(gmacs)} (x{gmacs / macs[REFERENCE]['total']:.2f})")
        rows.append(cells)
    report.add("## Summary (batch 1)")
    report.add()
    report.add(md_table(("", *(f"{t.dtype}: seconds, x ours" for t in at_1), "GMACs (x ours)"), rows))
    report.add()
    for timing in at_1:
        for version in ("sd21", "sd15"):
            default, fast = f"ours {version} default", f"ours {version} fast"
            if fast in timing.units and default in timing.units:
                speedup = statistics.median([d / f for d, f in zip(timing.seconds(default), timing.seconds(fast))])
                verdict = "met" if speedup >= FAST_SPEEDUP_TARGET else "NOT met"
                report.add(
                    f"- {timing.dtype}, {version}: fast mode is {speedup:.2f}x faster than the default mode "
                    f"(target >= {FAST_SPEEDUP_TARGET:g}x in bf16: {verdict if timing.dtype == 'bf16' else 'n/a'})."
                )
        matte_anything = next(iter(CASCADES))
        if timing.has(matte_anything):
            ratio = statistics.median(timing.ratios(matte_anything))
            verdict = "met" if ratio >= MATTE_ANYTHING_TARGET else "NOT met"
            report.add(
                f"- {timing.dtype}: Matte Anything takes {ratio:.2f}x the time of {REFERENCE} (target >= "
                f"{MATTE_ANYTHING_TARGET:g}x: {verdict})."
            )
    report.add()


if __name__ == "__main__":
    main()
