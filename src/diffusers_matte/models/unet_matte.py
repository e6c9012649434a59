# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`MatteUNet2DConditionModel`: the Stable Diffusion UNet as teacher and student of the paper.

- Prediction-head swap (sections 3.2.1, 3.2.2): `prediction_head="region"` (teacher, 3 logits),
  `"matte"` (student, coarse alpha and transparency logit R) or `"latent"` (the unchanged `conv_out`).
  The UNet predicts in a single step from the clean image latent z_I at timestep `prediction_timestep`.
- Structural optimisation (section 3.3): BK-SDM block pruning with teacher-to-student weight copy
  (`from_teacher`), and per-level self-attention factors (`self_attention_kv_downsample`).
- Capture for distillation (section 3.2.2): `capture()` returns chosen intermediate features and the
  self- and cross-attention maps averaged per resolution, for one forward pass.
"""

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (pipelines look for it here)
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.utils import BaseOutput, logging
from torch import nn

from .attention_processor import (
    SPATIAL_SIZE_ATTR,
    AttentionRecorder,
    MatteAttnProcessor,
    RemovedSelfAttention,
)
from .heads import PREDICTION_HEADS

logger = logging.get_logger(__name__)

BKSDM_VARIANTS = ("base", "small", "tiny")


@dataclass
class MatteUNetPrediction(BaseOutput):
    """Outputs of `MatteUNet2DConditionModel.predict`; fields that do not apply to the head are None.

    Args:
        coarse_alpha: (B, 1, h, w) coarse alpha matte alpha^lr (matte head), in [0, 1] in eval mode (unclipped in
            training, see `MatteHead`).
        transparency_logits: (B, 1, h, w) transparency confidence logits R (matte head).
        region_logits: (B, 3, h, w) background / foreground / transparent logits (region head).
        latent: (B, C, h, w) the unchanged latent prediction (latent head).
        features: (B, block_out_channels[0], h, w) input of the prediction head, when asked for.
    """

    coarse_alpha: torch.Tensor | None = None
    transparency_logits: torch.Tensor | None = None
    region_logits: torch.Tensor | None = None
    latent: torch.Tensor | None = None
    features: torch.Tensor | None = None


@dataclass
class CapturedActivations:
    """What `MatteUNet2DConditionModel.capture` collected during one forward pass."""

    features: dict[str, torch.Tensor] = field(default_factory=dict)
    attention: AttentionRecorder = field(default_factory=AttentionRecorder)

    @property
    def self_attention(self) -> dict[tuple[int, int], torch.Tensor]:
        """(B, h*w, M) self-attention maps averaged over heads and layers, keyed by the query grid (h, w)."""
        return self.attention.averaged(cross=False)

    @property
    def self_attention_kv_size(self) -> dict[tuple[int, int], tuple[int, int]]:
        """Key grid (hk, wk) of the self-attention maps at each query resolution (hk = h unless down-sampled)."""
        return self.attention.key_sizes()

    @property
    def cross_attention(self) -> dict[tuple[int, int], torch.Tensor]:
        """(B, h*w, L) cross-attention maps to the L text tokens, averaged over heads and layers."""
        return self.attention.averaged(cross=True)


class MatteUNet2DConditionModel(UNet2DConditionModel):
    r"""A `UNet2DConditionModel` that grounds alpha mattes: teacher and student of the paper.

    It takes every argument of `UNet2DConditionModel` (so any Stable Diffusion UNet checkpoint loads into it)
    plus:

    Args:
        prediction_head (`str`, defaults to `"latent"`):
            `"latent"` keeps `conv_out`; `"region"` predicts 3 region logits (teacher, eq. 2); `"matte"`
            predicts the coarse alpha and the transparency logit R (student, eqs. 7-8). `out_channels` is set
            to the head's channel count.
        head_channels (`int`, *optional*):
            Width of the head's two ConvBNReLU groups; defaults to `block_out_channels[0]`.
        prediction_timestep (`int`, defaults to 0):
            The timestep of the single-step prediction from the clean latent (`predict`). The paper does not
            state it; 0 treats z_I as a clean sample, as in VPD-style perception.
        self_attention_kv_downsample (`tuple[int]`, *optional*):
            One factor per resolution level (`len(block_out_channels)`): `-1` removes the self-attention
            layers of that level, `1` keeps them, `k > 1` computes their keys and values from a learnable
            k x k stride-k convolution (section 3.3). The paper's student is `(-1, 2, 2)` on a BK-SDM tiny UNet.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | tuple[int, int] | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        mid_block_type: str | None = "UNetMidBlock2DCrossAttn",
        up_block_types: tuple[str, ...] = (
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        only_cross_attention: bool | tuple[bool] = False,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int | tuple[int] = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        dropout: float = 0.0,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int | tuple[int] = 1280,
        transformer_layers_per_block: int | tuple[int] | tuple[tuple] = 1,
        reverse_transformer_layers_per_block: tuple[tuple[int]] | None = None,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        attention_head_dim: int | tuple[int] = 8,
        num_attention_heads: int | tuple[int] | None = None,
        dual_cross_attention: bool = False,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        resnet_skip_time_act: bool = False,
        resnet_out_scale_factor: float = 1.0,
        time_embedding_type: str = "positional",
        time_embedding_dim: int | None = None,
        time_embedding_act_fn: str | None = None,
        timestep_post_act: str | None = None,
        time_cond_proj_dim: int | None = None,
        conv_in_kernel: int = 3,
        conv_out_kernel: int = 3,
        projection_class_embeddings_input_dim: int | None = None,
        attention_type: str = "default",
        class_embeddings_concat: bool = False,
        mid_block_only_cross_attention: bool | None = None,
        cross_attention_norm: str | None = None,
        addition_embed_type_num_heads: int = 64,
        prediction_head: str = "latent",
        head_channels: int | None = None,
        prediction_timestep: int = 0,
        self_attention_kv_downsample: tuple[int, ...] | None = None,
    ):
        if prediction_head != "latent" and prediction_head not in PREDICTION_HEADS:
            raise ValueError(
                f"`prediction_head` must be one of {('latent', *PREDICTION_HEADS)}, got {prediction_head!r}."
            )
        if self_attention_kv_downsample is not None:
            _check_kv_factors(self_attention_kv_downsample, len(block_out_channels))
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            center_input_sample=center_input_sample,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            down_block_types=down_block_types,
            mid_block_type=mid_block_type,
            up_block_types=up_block_types,
            only_cross_attention=only_cross_attention,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            downsample_padding=downsample_padding,
            mid_block_scale_factor=mid_block_scale_factor,
            dropout=dropout,
            act_fn=act_fn,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            reverse_transformer_layers_per_block=reverse_transformer_layers_per_block,
            encoder_hid_dim=encoder_hid_dim,
            encoder_hid_dim_type=encoder_hid_dim_type,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            dual_cross_attention=dual_cross_attention,
            use_linear_projection=use_linear_projection,
            class_embed_type=class_embed_type,
            addition_embed_type=addition_embed_type,
            addition_time_embed_dim=addition_time_embed_dim,
            num_class_embeds=num_class_embeds,
            upcast_attention=upcast_attention,
            resnet_time_scale_shift=resnet_time_scale_shift,
            resnet_skip_time_act=resnet_skip_time_act,
            resnet_out_scale_factor=resnet_out_scale_factor,
            time_embedding_type=time_embedding_type,
            time_embedding_dim=time_embedding_dim,
            time_embedding_act_fn=time_embedding_act_fn,
            timestep_post_act=timestep_post_act,
            time_cond_proj_dim=time_cond_proj_dim,
            conv_in_kernel=conv_in_kernel,
            conv_out_kernel=conv_out_kernel,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            attention_type=attention_type,
            class_embeddings_concat=class_embeddings_concat,
            mid_block_only_cross_attention=mid_block_only_cross_attention,
            cross_attention_norm=cross_attention_norm,
            addition_embed_type_num_heads=addition_embed_type_num_heads,
        )
        if prediction_head != "latent":
            head = PREDICTION_HEADS[prediction_head](block_out_channels[0], head_channels or block_out_channels[0])
            self.conv_out = head
            if out_channels != head.num_outputs:
                self.register_to_config(out_channels=head.num_outputs)
        if self_attention_kv_downsample is not None:
            self._optimise_self_attention(self_attention_kv_downsample)
        self._register_spatial_size_hooks()

    # ----------------------------------------------------------------------------------------------------
    # Structure

    def _level_of(self, module_name: str) -> int:
        """Resolution level of a block: down_blocks.i -> i, up_blocks.j -> n-1-j, mid_block -> n-1."""
        num_levels = len(self.config.block_out_channels)
        kind, _, rest = module_name.partition(".")
        if kind == "down_blocks":
            return int(rest.split(".")[0])
        if kind == "up_blocks":
            return num_levels - 1 - int(rest.split(".")[0])
        return num_levels - 1

    def _optimise_self_attention(self, factors: Sequence[int]) -> None:
        """Install the per-level self-attention factors of section 3.3 (removal or down-sampled K/V)."""
        for name, block in self.named_modules():
            if not isinstance(block, BasicTransformerBlock) or block.only_cross_attention:
                continue
            factor = factors[self._level_of(name)]
            if factor == -1:
                block.attn1 = RemovedSelfAttention()
                block.norm1 = nn.Identity()  # only fed the removed layer
            elif factor > 1:
                block.attn1.set_processor(MatteAttnProcessor(block.attn1.query_dim, kv_downsample=factor))

    def _register_spatial_size_hooks(self) -> None:
        """Tell each attention layer its (h, w) grid: the transformer flattens the feature map before it."""

        def hook(module, args, kwargs):
            hidden_states = args[0] if args else kwargs["hidden_states"]
            for attn in module._matte_attention_layers:
                setattr(attn, SPATIAL_SIZE_ATTR, tuple(hidden_states.shape[-2:]))

        for module in self.modules():
            if isinstance(module, Transformer2DModel):
                module._matte_attention_layers = [m for m in module.modules() if isinstance(m, Attention)]
                module.register_forward_pre_hook(hook, with_kwargs=True)

    @property
    def kv_downsample_processors(self) -> dict[str, MatteAttnProcessor]:
        """The processors that hold down-sampling weights, by `attn_processors` name."""
        return {
            name: proc
            for name, proc in self.attn_processors.items()
            if isinstance(proc, MatteAttnProcessor) and proc.kv_down is not None
        }

    @contextlib.contextmanager
    def _keeping_kv_downsampling(self) -> Iterator[None]:
        """Re-install the down-sampled-K/V processors after a diffusers call that replaces every processor."""
        kept = self.kv_downsample_processors
        try:
            yield
        finally:
            if kept:
                processors = self.attn_processors
                processors.update(kept)
                super().set_attn_processor(processors)
                logger.info(f"Kept the down-sampled K/V processors of {len(kept)} self-attention layers.")

    def set_attn_processor(self, processor) -> None:
        """Like `UNet2DConditionModel.set_attn_processor`, but layers with down-sampled K/V keep their
        processor (and weights) when one processor is given for all layers; a dict must be explicit.
        """
        if isinstance(processor, dict):
            dropped = [n for n, p in self.kv_downsample_processors.items() if processor.get(n) is not p]
            if dropped:
                logger.warning(f"Replacing the down-sampled K/V processors of {dropped}: their weights are dropped.")
            return super().set_attn_processor(processor)
        with self._keeping_kv_downsampling():
            super().set_attn_processor(processor)

    def set_default_attn_processor(self) -> None:
        """Explicit-softmax `AttnProcessor` on plain layers; down-sampled K/V layers keep their processor."""
        self.set_attn_processor(AttnProcessor())

    def set_attention_slice(self, slice_size="auto") -> None:
        """Attention slicing on plain layers; down-sampled K/V layers (already small) keep their processor."""
        with self._keeping_kv_downsampling():
            super().set_attention_slice(slice_size)

    def fuse_qkv_projections(self) -> None:
        with self._keeping_kv_downsampling():
            super().fuse_qkv_projections()

    def unfuse_qkv_projections(self) -> None:
        with self._keeping_kv_downsampling():
            super().unfuse_qkv_projections()

    def set_use_memory_efficient_attention_xformers(self, valid: bool, attention_op=None) -> None:
        with self._keeping_kv_downsampling():
            super().set_use_memory_efficient_attention_xformers(valid, attention_op)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`ModelMixin.from_pretrained`, also for converting a checkpoint, e.g. a Stable Diffusion UNet loaded with
        `prediction_head="region"`: the modules the checkpoint lacks (a new head, K/V down-sampling) get their
        own initialisation instead of the uninitialised memory the fast loader leaves.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        if info["missing_keys"]:
            model._initialise_missing(info["missing_keys"])
        return (model, info) if output_loading_info else model

    def _initialise_missing(self, missing_keys: Sequence[str]) -> None:
        modules = dict(self.named_modules())
        device = next(p.device for p in self.parameters() if not p.is_meta)
        for name in sorted({key.rsplit(".", 1)[0] for key in missing_keys}):
            module = modules[name]
            module.to_empty(device=device, recurse=False)
            parent = modules.get(name.rsplit(".", 1)[0])
            if isinstance(parent, MatteAttnProcessor) and module is parent.kv_down:
                parent.reset_kv_down_to_average()
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                raise RuntimeError(f"Cannot initialise {name!r}, which the checkpoint does not contain.")

    # ----------------------------------------------------------------------------------------------------
    # Prediction and capture

    def predict(
        self,
        latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        output_features: bool = False,
        module: nn.Module | None = None,
        **forward_kwargs,
    ) -> MatteUNetPrediction:
        """Single-step prediction from the clean image latent z_I at `config.prediction_timestep`.

        Args:
            latents: (B, in_channels, h, w) image latents.
            encoder_hidden_states: (B, L, cross_attention_dim) text features (after the text adapter).
            output_features: also return the features entering the prediction head (for the matting decoder).
            module: what to call in place of this UNet: a wrapper of it (DDP, as `accelerator.prepare` returns it
                for training) whose forward runs it, so that the wrapper sees the forward pass.
        """
        features = {}
        hook = None
        if output_features:
            hook = self.conv_out.register_forward_pre_hook(lambda _, args: features.update(x=args[0]))
        try:
            timestep = torch.full(
                (latents.shape[0],),
                self.config.prediction_timestep,
                device=latents.device,
            )
            sample = (self if module is None else module)(
                latents,
                timestep,
                encoder_hidden_states,
                return_dict=False,
                **forward_kwargs,
            )[0]
        finally:
            if hook is not None:
                hook.remove()
        head = self.config.prediction_head
        return MatteUNetPrediction(
            coarse_alpha=sample[:, :1] if head == "matte" else None,
            transparency_logits=sample[:, 1:2] if head == "matte" else None,
            region_logits=sample if head == "region" else None,
            latent=sample if head == "latent" else None,
            features=features.get("x"),
        )

    @contextlib.contextmanager
    def capture(self, features: Sequence[str] = (), attention_maps: bool = False) -> Iterator[CapturedActivations]:
        """Capture intermediate features and attention maps of the forward passes run inside the block.

        Args:
            features: module names (as in `named_modules()`, e.g. `"down_blocks.1"`, `"up_blocks.0"`) whose
                outputs to keep; a module returning a tuple contributes its first element.
            attention_maps: also record every attention layer's softmax map (explicit-softmax path, for
                distillation); the fast SDPA path is restored on exit.

        Gradients flow through the captured tensors. With gradient checkpointing, call `backward` inside the
        block: the recomputed forward must take the same (explicit-softmax) path. Example::

            with unet.capture(features=["up_blocks.0"], attention_maps=True) as captured:
                unet(latents, t, text)
            captured.features["up_blocks.0"], captured.self_attention[(h, w)]
        """
        captured = CapturedActivations()
        modules = dict(self.named_modules())
        missing = [name for name in features if name not in modules]
        if missing:
            top = sorted({n.split(".")[0] for n in modules if n})
            raise ValueError(f"`features` names no module of this UNet: {missing}. Top-level modules: {top}.")
        hooks = [modules[name].register_forward_hook(_make_feature_hook(captured.features, name)) for name in features]
        original = self.attn_processors if attention_maps else None
        try:
            if attention_maps:
                self._attach_recorder(captured.attention, original)
            yield captured
        finally:
            for hook in hooks:
                hook.remove()
            if original is not None:
                for proc in original.values():
                    if isinstance(proc, MatteAttnProcessor):
                        proc.recorder = proc.layer_name = None
                super().set_attn_processor(original)

    def _attach_recorder(self, recorder: AttentionRecorder, processors: dict) -> None:
        recording = {}
        for name, proc in processors.items():
            if not isinstance(proc, MatteAttnProcessor):
                proc = MatteAttnProcessor()
            proc.recorder, proc.layer_name = recorder, name
            recording[name] = proc
        super().set_attn_processor(recording)

    # ----------------------------------------------------------------------------------------------------
    # BK-SDM pruning

    @classmethod
    def from_teacher(
        cls,
        teacher: UNet2DConditionModel,
        variant: str | None = "tiny",
        output_loading_info: bool = False,
        **config_overrides,
    ):
        """Build a BK-SDM-pruned student from a teacher UNet and copy the teacher's weights into it.

        Args:
            teacher: any `UNet2DConditionModel` with the Stable Diffusion block layout (SD 1.x or 2.x).
            variant: `"base"` (one layer per block), `"small"` (also no mid block), `"tiny"` (also no
                lowest-resolution level), or None (same architecture).
            output_loading_info: also return a dict with `copied_keys`, `new_keys` (initialised fresh, such as
                a new head or down-sampling convolutions) and `unused_teacher_keys`.
            config_overrides: student config entries, e.g. `prediction_head="matte"`,
                `self_attention_kv_downsample=(-1, 2, 2)`.

        Weight mapping (Kim et al. 2024): down blocks keep the teacher's first layer; an up block's two layers
        come from the teacher's first and last layers; "tiny" shifts up blocks by one.
        """
        config = _pruned_config(dict(teacher.config), variant)
        config.update(config_overrides)
        student = cls.from_config(config)
        info = _copy_teacher_weights(teacher, student, up_offset=1 if variant == "tiny" else 0)
        logger.info(
            f"from_teacher({variant!r}): copied {len(info['copied_keys'])} tensors, initialised "
            f"{len(info['new_keys'])} new ones, left {len(info['unused_teacher_keys'])} teacher tensors unused."
        )
        return (student, info) if output_loading_info else student


def _make_feature_hook(store: dict, name: str):
    def hook(module, args, output):
        store[name] = output[0] if isinstance(output, (tuple, list)) else output

    return hook


def _check_kv_factors(factors: Sequence[int], num_levels: int) -> None:
    if len(factors) != num_levels:
        raise ValueError(
            f"`self_attention_kv_downsample` needs one factor per resolution level ({num_levels}), got {tuple(factors)}."
        )
    bad = [f for f in factors if not isinstance(f, int) or (f < 1 and f != -1)]
    if bad:
        raise ValueError(f"`self_attention_kv_downsample` factors must be -1, 1 or k > 1; got {tuple(factors)}.")


PER_LEVEL_KEYS = (
    "attention_head_dim",
    "num_attention_heads",
    "cross_attention_dim",
    "transformer_layers_per_block",
    "layers_per_block",
    "only_cross_attention",
)


def _pruned_config(config: dict, variant: str | None) -> dict:
    """The BK-SDM student config (Kim et al. 2024) of a teacher config."""
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if variant is None:
        return config
    if variant not in BKSDM_VARIANTS:
        raise ValueError(f"`variant` must be one of {BKSDM_VARIANTS} or None, got {variant!r}.")
    num_levels = len(config["block_out_channels"])
    config["layers_per_block"] = 1
    if variant in ("small", "tiny"):
        config["mid_block_type"] = None
    if variant == "tiny":
        if num_levels < 2 or config["down_block_types"][-1] != "DownBlock2D":
            raise ValueError(
                "The 'tiny' variant removes the lowest-resolution level, which must be a plain DownBlock2D / "
                f"UpBlock2D pair as in Stable Diffusion; got down_block_types={config['down_block_types']}."
            )
        config["block_out_channels"] = tuple(config["block_out_channels"][:-1])
        config["down_block_types"] = tuple(config["down_block_types"][:-1])
        config["up_block_types"] = tuple(config["up_block_types"][1:])
        for key in PER_LEVEL_KEYS:
            value = config.get(key)
            if isinstance(value, (list, tuple)) and len(value) == num_levels:
                config[key] = tuple(value[:-1])
    kv = config.get("self_attention_kv_downsample")
    if kv is not None and len(kv) != len(config["block_out_channels"]):
        config["self_attention_kv_downsample"] = None  # the teacher's factors do not fit the pruned levels
    return config


_UP_LAYER = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$")
_UP_OTHER = re.compile(r"^up_blocks\.(\d+)\.(.+)$")


def _teacher_key(student_key: str, up_offset: int, student_last: int, teacher_last: int) -> str:
    """Teacher tensor name for a student tensor name (BK-SDM mapping)."""
    match = _UP_LAYER.match(student_key)
    if match:
        block, kind, layer, rest = match.groups()
        layer = teacher_last if int(layer) == student_last else int(layer)
        return f"up_blocks.{int(block) + up_offset}.{kind}.{layer}.{rest}"
    match = _UP_OTHER.match(student_key)
    if match:
        block, rest = match.groups()
        return f"up_blocks.{int(block) + up_offset}.{rest}"
    return student_key  # down blocks keep their first layer under the same name; the rest is unchanged


def _copy_teacher_weights(teacher: nn.Module, student: nn.Module, up_offset: int) -> dict[str, list[str]]:
    teacher_state = teacher.state_dict()
    student_state = student.state_dict()
    teacher_last = _last_layer_index(teacher.config.layers_per_block)
    student_last = _last_layer_index(student.config.layers_per_block)
    new_state, copied, new, used = {}, [], [], set()
    for key, value in student_state.items():
        source = _teacher_key(key, up_offset, student_last, teacher_last)
        if source in teacher_state and teacher_state[source].shape == value.shape:
            new_state[key] = teacher_state[source].to(value.dtype)
            copied.append(key)
            used.add(source)
        else:
            new.append(key)
    student.load_state_dict(new_state, strict=False)
    unused = [k for k in teacher_state if k not in used]
    return {"copied_keys": copied, "new_keys": new, "unused_teacher_keys": unused}


def _last_layer_index(layers_per_block) -> int:
    """Index of the last layer of an up block (up blocks have layers_per_block + 1 layers)."""
    if isinstance(layers_per_block, (list, tuple)):
        if len(set(layers_per_block)) != 1:
            raise ValueError(f"from_teacher needs the same layers_per_block on every level, got {layers_per_block}.")
        layers_per_block = layers_per_block[0]
    return layers_per_block


def distillation_feature_pairs(teacher_config, variant: str | None) -> list[tuple[str, str]]:
    """(teacher module, student module) pairs whose outputs L_SG (eq. 3) aligns, following BK-SDM.

    Stage outputs of every down and up block, matched through the pruning; for "tiny", whose last down block
    lost its down-sampler, the teacher's last transformer before that down-sampler is matched instead (BK-SDM
    matches its `proj_out`; we take the transformer's output, which is a feature map for every projection type).
    """
    num_levels = len(teacher_config.block_out_channels)
    if variant != "tiny":
        names = [f"down_blocks.{i}" for i in range(num_levels)] + [f"up_blocks.{i}" for i in range(num_levels)]
        return [(name, name) for name in names]
    last_attention = _last_layer_index(teacher_config.layers_per_block) - 1
    pairs = [(f"down_blocks.{i}", f"down_blocks.{i}") for i in range(num_levels - 2)]
    pairs.append(
        (
            f"down_blocks.{num_levels - 2}.attentions.{last_attention}",
            f"down_blocks.{num_levels - 2}.attentions.0",
        )
    )
    pairs += [(f"up_blocks.{i + 1}", f"up_blocks.{i}") for i in range(num_levels - 1)]
    return pairs
