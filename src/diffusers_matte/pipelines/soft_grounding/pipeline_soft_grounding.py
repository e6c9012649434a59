# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`SoftGroundingMattingPipeline`: an image and a sentence in, the alpha matte of what the sentence names out.

One call follows the paper's inference path (Fig. 3, Secs. 3.2-3.4), in a single UNet step:

    image --preprocess--> pixels --vae.encode--> z_I              prompt --CLIP--> f_T --text_adapter--> f_T'
    unet.predict(z_I, f_T') --> coarse alpha, R, features (1/8)
    matting_decoder(pixels, coarse alpha, R, features) --> alpha (processing resolution)
    [refiner(image at full size, alpha, decoder context) --> alpha (input resolution)]

This file imports only installed libraries and its siblings `image_processor.py` and `remote_code.py`, so that
`diffusers_matte.hub` can copy them next to a checkpoint for `trust_remote_code` loading without our package.
"""

import importlib
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderTiny, DiffusionPipeline
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput, logging
from transformers import CLIPTextModel, CLIPTokenizer

from .image_processor import SoftGroundingImageProcessor, load_images
from .remote_code import add_code_to_saved_pipeline

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("np", "pt", "pil")
RESAMPLE_METHODS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> from PIL import Image
        >>> from diffusers_matte import SoftGroundingMattingPipeline

        >>> pipe = SoftGroundingMattingPipeline.from_pretrained("path/or/hub-id")
        >>> image = Image.open("photo.jpg")
        >>> out = pipe(image, prompt=["the dog on the left", "the glass of water"], output_type="pil")
        >>> out.alpha[0].save("dog.png"); out.alpha[1].save("glass.png")
        ```
"""


def tokenize(tokenizer, text_encoder, prompts: list[str]) -> tuple[torch.Tensor, int]:
    """Token ids padded and truncated to the text encoder's limit; returns `(ids, limit)`."""
    max_length = min(tokenizer.model_max_length, text_encoder.config.max_position_embeddings)
    ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    return ids.input_ids, max_length


def cpu_channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in channels_last memory format when it lives on the CPU, as it is.

    On CPU the convolutions of the image encoders run in that layout without reordering their activations at
    every layer: measured on 2 cores at 512 px, the SD VAE encoder takes 0.64x and the tiny encoder 0.35x the time
    in bf16; the UNets are unchanged (`benchmarks/results/pipeline_cpu.md`). Converting the
    activations is enough (the weights stay contiguous, so `save_pretrained` is unaffected); the values are the
    same up to float rounding. Not measured on CUDA, so left alone there."""
    if tensor.device.type != "cpu" or tensor.ndim != 4:
        return tensor
    return tensor.contiguous(memory_format=torch.channels_last)


def encode_latents(vae: AutoencoderKL | AutoencoderTiny, pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`z_I`: the VAE posterior mode, scaled (no sampling: the prediction is deterministic). An `AutoencoderTiny`
    (the fast mode, `training/train_tiny_encoder.py`) has no posterior: its latents are used as they come, times
    its own `scaling_factor` (1.0 for TAESD)."""
    encoded = vae.encode(cpu_channels_last(pixels.to(device, vae.dtype)))
    latents = encoded.latents if isinstance(vae, AutoencoderTiny) else encoded.latent_dist.mode()
    return latents * vae.config.scaling_factor


def vae_scale_factor(vae: AutoencoderKL | AutoencoderTiny) -> int:
    """How many pixels one latent cell spans, for an `AutoencoderKL` or an `AutoencoderTiny`."""
    channels = vae.config.get("block_out_channels") or vae.config.encoder_block_out_channels
    return 2 ** (len(channels) - 1)


# The VAEs the pipeline takes, by the `_class_name` of their saved config.
VAE_CLASSES = {"AutoencoderKL": AutoencoderKL, "AutoencoderTiny": AutoencoderTiny}


def read_model_config(path: str | os.PathLike, subfolder: str | None = None, **hub_kwargs) -> dict:
    """The saved `config.json` of the model at `path` (in `subfolder`), read by diffusers' `load_config`, except
    that a local folder's own config never stands in for a missing subfolder's (diffusers falls back to it).
    Raises `EnvironmentError` when there is none."""
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, subfolder or "", "config.json")):
        raise EnvironmentError(f"no {os.path.join(subfolder or '', 'config.json')} in {os.fspath(path)!r}")
    return AutoencoderKL.load_config(path, subfolder=subfolder, **hub_kwargs)


def load_vae(
    path: str | os.PathLike, subfolder: str | None = None, option: str | None = None, **kwargs
) -> AutoencoderKL | AutoencoderTiny:
    """The VAE saved at `path`, an `AutoencoderKL` or an `AutoencoderTiny` as the `_class_name` of its config says
    (`read_model_config`): `path` is a folder or Hub id holding it in `vae/` (a pipeline, a Stable Diffusion
    base, the output of `training/train_tiny_encoder.py`) or the VAE's own folder; with `subfolder`, it is there.

    Args:
        option: the command-line option that gave `path`, named in the errors.
        kwargs: for `from_pretrained` (`revision`, `torch_dtype`, `use_safetensors`, ...).

    Raises `ValueError` when `path` holds no VAE config, or the config of another class.
    """
    shown = f"{option} {os.fspath(path)!r}" if option else repr(os.fspath(path))
    hub_kwargs = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
    candidates = [subfolder] if subfolder else ["vae", None]
    for candidate in candidates:
        try:
            config = read_model_config(path, candidate, **hub_kwargs)
            break
        except EnvironmentError as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
    else:
        expected = " or ".join(f"{c}/config.json" if c else "config.json" for c in candidates)
        given = f"the folder has no {expected}" if os.path.isdir(path) else f"there is no such folder ({reason})"
        raise ValueError(
            f"{shown} holds no VAE: expected a folder or Hub id with {expected} (an AutoencoderKL or an "
            f"AutoencoderTiny, e.g. the output of training/train_tiny_encoder.py); {given}."
        )
    class_name = config.get("_class_name")
    if class_name not in VAE_CLASSES:
        where = os.path.join(candidate, "config.json") if candidate else "config.json"
        raise ValueError(
            f"{shown} holds no VAE: expected an AutoencoderKL or an AutoencoderTiny, but its {where} is of "
            f"{class_name or 'no diffusers class'}."
        )
    return VAE_CLASSES[class_name].from_pretrained(path, subfolder=candidate, **kwargs)


def check_vae_matches_unet(vae: AutoencoderKL | AutoencoderTiny, unet: ModelMixin, name: str = "the VAE") -> None:
    """Refuse a VAE whose latents the UNet cannot read: its `latent_channels` must be the UNet's `in_channels`.
    `name` says which VAE in the `ValueError`."""
    channels, expected = vae.config.latent_channels, unet.config.in_channels
    if channels != expected:
        raise ValueError(
            f"{name} gives {channels} latent channels, but the UNet reads {expected} (its in_channels): expected a "
            f"VAE with {expected} latent channels, such as one training/train_tiny_encoder.py distils into the "
            "pipeline's latent space."
        )


# Side, in latent cells, of the local mean whose peak is the grounding score (see `grounding_score`).
GROUNDING_SCORE_WINDOW = 3


def grounding_score(
    coarse_alpha: torch.Tensor, transparency: torch.Tensor, window: int = GROUNDING_SCORE_WINDOW
) -> torch.Tensor:
    """How clearly the model finds what a prompt names in its image: one number in [0, 1] per pair, low when the
    prompt names nothing there. It is the peak, over the latent grid, of the `window x window` local mean of
    `max(alpha^lr, sigmoid(R))`.

    Why this, from what the UNet already predicts and without a new head: trained on texts that name nothing (an
    all-zero alpha, hence an all-background region map, eqs. 2, 7, 8), the model learns `alpha^lr = 0` and
    `sigmoid(R) = 0` on the whole grid for them, while a named object has cells that are opaque (`alpha^lr` near
    1) or transparent or at its edge (`sigmoid(R)` near 1, eq. 8). The maximum of the two keeps semi-transparent
    objects (glass, smoke, veils), whose alpha stays low, from scoring low. The peak rather than the mass, so
    that a small object scores as high as a large one; of a local mean, so that one stray cell does not make a
    score on its own.

    Limits: it is the model's confidence, not a calibrated probability, and a threshold that separates the two
    cases depends on the model and the data (choose it on held-out rows with and without a target). A model
    never trained on texts without a target grounds every prompt somewhere and scores it high.

    Args:
        coarse_alpha: `(B, 1, h, w)` the UNet's `alpha^lr`, on the cells of the image (padding cropped).
        transparency: `(B, 1, h, w)` its `sigmoid(R)`, on the same cells.
        window: odd side of the local mean, in cells (at the edges, the mean of the cells inside the grid).

    Returns:
        `(B,)` float32 scores, each computed from its own pair only.
    """
    if not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"`window` must be an odd positive integer, got {window!r}.")
    if coarse_alpha.shape != transparency.shape or coarse_alpha.ndim != 4:
        raise ValueError(
            "`coarse_alpha` and `transparency` must both have shape (B, 1, h, w), got "
            f"{tuple(coarse_alpha.shape)} and {tuple(transparency.shape)}."
        )
    presence = torch.maximum(coarse_alpha.float(), transparency.float()).clamp(0.0, 1.0)
    local = F.avg_pool2d(presence, window, stride=1, padding=window // 2, count_include_pad=False)
    return local.flatten(1).amax(dim=1).clamp(0.0, 1.0)


@dataclass
class SoftGroundingMattingOutput(BaseOutput):
    """Output of [`SoftGroundingMattingPipeline`]: one entry per (image, prompt) pair, image-major (all prompts of
    the first image, then those of the second, ...).

    Args:
        alpha: the alpha mattes in [0, 1]. "np": `(N, H, W, 1)` float32 array; "pt": `(N, 1, H, W)` tensor;
            "pil": list of 8-bit grayscale images. When the mattes differ in size (images of different sizes),
            "np" and "pt" give a list of `(H, W, 1)` arrays / `(1, H, W)` tensors.
        coarse_alpha: the UNet's low-resolution alpha `alpha^lr`, up-sampled to the size of `alpha`, same format.
        transparency: the UNet's transparency confidence `sigmoid(R)`, up-sampled likewise, same format.
        grounding_score: how clearly the model finds what each prompt names in its image, in [0, 1], low when it
            names nothing there (see [`grounding_score`]). "np": `(N,)` float32 array; "pt": `(N,)` tensor; "pil":
            list of floats. Not part of the tuple that `return_dict=False` gives.
    """

    alpha: np.ndarray | torch.Tensor | list
    coarse_alpha: np.ndarray | torch.Tensor | list
    transparency: np.ndarray | torch.Tensor | list
    grounding_score: np.ndarray | torch.Tensor | list | None = None


@dataclass
class AlphaPrediction:
    """What the UNet and the matting decoder predict for a batch of (image, prompt) pairs.

    Args:
        alpha: `(B, 1, H, W)` the decoder's alpha at the (padded) processing resolution.
        coarse_alpha: `(B, 1, h, w)` the UNet's `alpha^lr` at the latent resolution (h = H / 8 for SD).
        transparency: `(B, 1, h, w)` the UNet's transparency confidence `sigmoid(R)`.
        context: `(B, C, H, W)` the decoder's last features, what the refiner reads.
    """

    alpha: torch.Tensor
    coarse_alpha: torch.Tensor
    transparency: torch.Tensor
    context: torch.Tensor

    def select(self, index: int) -> "AlphaPrediction":
        """The prediction of pair `index` of the batch, each tensor keeping its batch axis of 1."""
        return AlphaPrediction(*(getattr(self, f.name)[index : index + 1] for f in fields(self)))


@dataclass
class PreparedImage:
    """One input image after `SoftGroundingImageProcessor.preprocess`."""

    image: torch.Tensor  # (1, 3, H, W) in [0, 1], as given: what the refiner reads at the output size
    pixels: torch.Tensor  # (1, 3, H', W') in [-1, 1], resized to the processing resolution and padded
    padding: tuple[int, int]  # rows and columns of padding at the bottom and right of `pixels`
    original_size: tuple[int, int]  # (H, W)

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[-2:])

    def crop_padding(self, prediction: torch.Tensor) -> torch.Tensor:
        """The cells of `prediction`, a map on the padded grid at any scale of it, that hold some of the image."""
        (height, width), (pad_rows, pad_columns) = self.grid, self.padding
        rows = max(1, math.ceil((height - pad_rows) * prediction.shape[-2] / height))
        columns = max(1, math.ceil((width - pad_columns) * prediction.shape[-1] / width))
        return prediction[..., :rows, :columns]


def _import_component_modules(path: str) -> None:
    """Import the `diffusers_matte` modules that `model_index.json` names: diffusers loads a component class from
    outside diffusers and transformers only if its module is already imported."""
    index_file = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_file):
        return
    with open(index_file, encoding="utf-8") as f:
        index = json.load(f)
    for value in index.values():
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            if value[0].startswith("diffusers_matte."):
                importlib.import_module(value[0])


def _batches(indices, keys, batch_size: int) -> list[list[int]]:
    """Split `indices` into batches of at most `batch_size` whose items share the same `keys[i]`."""
    groups = defaultdict(list)
    for i in indices:
        groups[keys[i]].append(i)
    return [g[s : s + batch_size] for g in groups.values() for s in range(0, len(g), batch_size)]


class SoftGroundingMattingPipeline(DiffusionPipeline):
    r"""Text-grounded alpha matting in one UNet step (Xiang et al., "Teaching Diffusion Models to Ground Alpha
    Matte", TMLR 2025).

    Args:
        vae ([`AutoencoderKL`]): encodes the image to the latent `z_I` (posterior mode, scaled).
        text_encoder ([`~transformers.CLIPTextModel`]): the frozen CLIP text encoder.
        tokenizer ([`~transformers.CLIPTokenizer`]): its tokenizer.
        text_adapter ([`ModelMixin`]): a `TextAdapter` mapping the CLIP hidden states to the UNet's text features.
        unet ([`ModelMixin`]): a `MatteUNet2DConditionModel` with the matte head (student); its config holds the
            timestep of the single-step prediction (`prediction_timestep`).
        matting_decoder ([`ModelMixin`]): a `MattingDecoder` producing the alpha at the processing resolution.
        refiner ([`ModelMixin`], *optional*): a `SparseMatteRefiner` that lifts the decoder's alpha to the input's
            resolution (Sec. 3.4, "Extend to High-resolution Inference"); without it the alpha is resized.
        default_processing_resolution (`int`, defaults to 512): longest edge the image is resized to before
            encoding (the resolution the models were trained at); `0` processes the image at its own size.
    """

    model_cpu_offload_seq = "text_encoder->text_adapter->vae->unet->matting_decoder->refiner"
    _optional_components = ["refiner"]

    def __init__(
        self,
        vae: AutoencoderKL | AutoencoderTiny,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        text_adapter: ModelMixin,
        unet: ModelMixin,
        matting_decoder: ModelMixin,
        refiner: ModelMixin | None = None,
        default_processing_resolution: int = 512,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            text_adapter=text_adapter,
            unet=unet,
            matting_decoder=matting_decoder,
            refiner=refiner,
        )
        self.register_to_config(default_processing_resolution=default_processing_resolution)
        self.vae_scale_factor = vae_scale_factor(vae) if vae is not None else 8
        unet_factor = 2 ** (len(unet.config.block_out_channels) - 1) if unet is not None else 8
        # Padding to this multiple gives every UNet level a whole grid, so the skip connections line up.
        self.image_processor = SoftGroundingImageProcessor(pad_multiple=self.vae_scale_factor * unet_factor)

    # Loading and publishing -------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load from a local folder or a Hub id. A Hub id is downloaded with `snapshot_download` first: diffusers'
        own Hub download check refuses components whose code lives outside diffusers and transformers.
        """
        path = os.fspath(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            from huggingface_hub import snapshot_download

            hub_kwargs = {
                k: kwargs.pop(k) for k in ("revision", "force_download", "proxies", "local_files_only") if k in kwargs
            }
            hub_kwargs.update({k: kwargs[k] for k in ("cache_dir", "token") if k in kwargs})
            path = snapshot_download(path, **hub_kwargs)
        _import_component_modules(path)
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def load_config(cls, *args, **kwargs):
        """`DiffusionPipeline.load_config`; a `model_index.json` of the exported layout (`save_pretrained_with_code`)
        whose code is diffusers-matte's own is read as naming the installed classes, so that such a folder loads
        without `trust_remote_code` where the package is installed (`diffusers_matte.hub.with_installed_classes`)."""
        config = super().load_config(*args, **kwargs)
        try:
            translate = importlib.import_module("diffusers_matte.hub").with_installed_classes
        except ImportError:  # this file exported and loaded as remote code, without diffusers_matte
            return config
        return (translate(config[0]), *config[1:]) if isinstance(config, tuple) else translate(config)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """`DiffusionPipeline.save_pretrained`. A pipeline loaded as remote code (its classes from diffusers' module
        cache, not from diffusers_matte) also writes its code, so that the folder loads again with
        `trust_remote_code=True` where diffusers_matte is not installed."""
        super().save_pretrained(save_directory, **kwargs)
        if type(self).__module__.split(".")[0] != "diffusers_matte":
            add_code_to_saved_pipeline(self, save_directory)

    def save_pretrained_with_code(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """`save_pretrained`, plus the code of the pipeline and of its custom components, so that
        `DiffusionPipeline.from_pretrained(save_directory, trust_remote_code=True)` works without `diffusers_matte`.
        See `diffusers_matte.hub.save_pretrained_with_code`."""
        # Imported by name at call time: the exported copy of this file must not depend on diffusers_matte.
        importlib.import_module("diffusers_matte.hub").save_pretrained_with_code(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload the pipeline with its code and a model card; see `diffusers_matte.hub.push_to_hub`."""
        try:
            hub = importlib.import_module("diffusers_matte.hub")
        except ImportError:
            # the exported copy, without diffusers_matte: diffusers' upload of `save_pretrained` (code included)
            return super().push_to_hub(repo_id, **kwargs)
        return hub.push_to_hub(self, repo_id, **kwargs)

    # Inputs ------------------------------------------------------------------------------------------------------

    @staticmethod
    def prompts_per_image(prompt: str | list, num_images: int) -> list[list[str]]:
        """Normalise `prompt` to one list of prompts per image.

        - a string: that prompt for every image;
        - a list of strings: with one image, all of them for it (several mattes); otherwise one per image;
        - a list with one entry per image, each a string or a list of strings: those prompts for that image.
        """
        if isinstance(prompt, str):
            per_image = [[prompt] for _ in range(num_images)]
        elif isinstance(prompt, (list, tuple)):
            if num_images == 1 and all(isinstance(p, str) for p in prompt):
                per_image = [list(prompt)]
            elif len(prompt) == num_images:
                per_image = [[p] if isinstance(p, str) else list(p) for p in prompt]
            else:
                raise ValueError(
                    f"`prompt` has {len(prompt)} entries for {num_images} images; give one string for all images, "
                    "one entry (a string or a list of strings) per image, or, for a single image, a list of strings."
                )
        else:
            raise TypeError(f"`prompt` must be a string or a list, got {type(prompt).__name__}.")
        for i, prompts in enumerate(per_image):
            if len(prompts) == 0:
                raise ValueError(f"Image {i} has no prompt; give at least one non-empty prompt per image.")
            for p in prompts:
                if not isinstance(p, str):
                    raise TypeError(f"Prompts must be strings, got {type(p).__name__} for image {i}.")
                if not p.strip():
                    raise ValueError(f"Image {i} has an empty prompt; describe the object to matte.")
        return per_image

    def check_inputs(
        self,
        processing_resolution: int,
        resample_method_input: str,
        resample_method_output: str,
        batch_size: int,
        output_type: str,
        num_inference_steps: int | None = None,
    ) -> None:
        if not isinstance(processing_resolution, int) or processing_resolution < 0:
            raise ValueError(
                f"`processing_resolution` must be a non-negative integer (0: native size), got {processing_resolution!r}."
            )
        for name, value in (
            ("resample_method_input", resample_method_input),
            ("resample_method_output", resample_method_output),
        ):
            if value not in RESAMPLE_METHODS:
                raise ValueError(f"`{name}` must be one of {RESAMPLE_METHODS}, got {value!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if num_inference_steps not in (None, 1):
            raise ValueError(
                f"`num_inference_steps` must be 1 or None (the prediction is a single UNet step), got "
                f"{num_inference_steps!r}."
            )

    # Stages ------------------------------------------------------------------------------------------------------

    def encode_prompt(
        self,
        prompt: str | list[str],
        device: torch.device | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Text features `f_T'` for the UNet: tokenizer -> CLIP text encoder -> text adapter (Sec. 3.2.1).

        Prompts longer than the text encoder's limit are truncated, with a warning. Returns `(N, L, D)`.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        device = device or self._execution_device
        tokens, max_length = tokenize(self.tokenizer, self.text_encoder, prompts)
        for p in prompts:
            ids = self.tokenizer(p).input_ids
            if len(ids) > max_length:
                dropped = self.tokenizer.decode(ids[max_length - 1 : -1], skip_special_tokens=True)
                logger.warning(
                    f"A prompt is longer than the text encoder's limit of {max_length} tokens and was truncated; "
                    f"the dropped part is {dropped!r}."
                )
        step = batch_size or len(prompts)
        features = []
        for start in range(0, len(prompts), step):
            hidden = self.text_encoder(tokens[start : start + step].to(device))[0]
            features.append(self.text_adapter(hidden.to(self.text_adapter.dtype)))
        return torch.cat(features)

    def encode_image(self, pixels: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """`z_I`: the VAE posterior mode, scaled (no sampling: the prediction is deterministic)."""
        return encode_latents(self.vae, pixels, device or self._execution_device)

    def predict_alpha(
        self,
        pixels: torch.Tensor,
        latents: torch.Tensor,
        text_features: torch.Tensor,
        device: torch.device | None = None,
    ) -> AlphaPrediction:
        """One UNet step and the matting decoder on `(B, 3, H, W)` pixels in [-1, 1], their `(B, 4, h, w)` latents
        and `(B, L, D)` text features (Secs. 3.2 and 3.4)."""
        prediction = self.unet.predict(
            cpu_channels_last(latents.to(self.unet.dtype)),
            text_features.to(self.unet.dtype),
            output_features=True,
        )
        decoded = self.matting_decoder(
            cpu_channels_last(pixels.to(device or self._execution_device, self.matting_decoder.dtype)),
            prediction.coarse_alpha,
            prediction.transparency_logits,
            prediction.features,
        )
        return AlphaPrediction(
            alpha=decoded.alpha,
            coarse_alpha=prediction.coarse_alpha,
            transparency=torch.sigmoid(prediction.transparency_logits),
            context=decoded.hidden_states,
        )

    def refine(
        self, image: torch.Tensor, alpha: torch.Tensor, context: torch.Tensor, device: torch.device | None = None
    ) -> torch.Tensor:
        """Hook for the optional refiner: `image` `(1, 3, H, W)` in [0, 1] at the output size, `alpha` and `context`
        at the (unpadded) processing resolution. Returns the alpha `(1, 1, H, W)`."""
        pixel_values = (image * 2.0 - 1.0).to(device or self._execution_device, self.refiner.dtype)
        return self.refiner(pixel_values=pixel_values, alpha=alpha, context=context).alpha

    # Call --------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | np.ndarray | torch.Tensor | list,
        prompt: str | list | None = None,
        processing_resolution: int | None = None,
        match_input_resolution: bool = True,
        resample_method_input: str = "bilinear",
        resample_method_output: str = "bilinear",
        batch_size: int = 1,
        output_type: str = "np",
        return_dict: bool = True,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        prompt_embeds: torch.Tensor | None = None,
    ) -> SoftGroundingMattingOutput | tuple:
        r"""Predict the alpha matte of the object each prompt describes.

        Args:
            image: a PIL image, a numpy array `(H, W[, C])` or `(N, H, W, C)`, a torch tensor `(C, H, W)` or
                `(N, C, H, W)`, or a list of them; any size and aspect ratio. RGB, RGBA (alpha ignored), grayscale
                and 16-bit inputs are converted; uint8, uint16 or floats in [0, 1]. PIL images are turned upright by
                their EXIF orientation; numpy arrays and tensors are taken as they are.
            prompt: one string for all images; a list with one string or list of strings per image; or, for a single
                image, a list of strings (several mattes of that image, the image encoded once).
            processing_resolution: longest edge the image is resized to for the models; `None` uses the pipeline's
                `default_processing_resolution`, `0` the image's own size. Sizes are padded as the models need.
            match_input_resolution: return mattes at the input's size (default) rather than the processing size.
            resample_method_input / resample_method_output: interpolation for the resizes.
            batch_size: how many (image, prompt) pairs go through the models at once; bounds memory.
            output_type: "np", "pt" or "pil".
            return_dict: return a [`SoftGroundingMattingOutput`] (with the grounding scores) rather than the tuple
                `(alpha, coarse_alpha, transparency)`.
            num_inference_steps: `None` or 1: the model predicts in a single UNet step (any other value is an error).
            generator: accepted so that code written for other diffusers pipelines runs unchanged, and ignored:
                nothing in the prediction is random.
            prompt_embeds: `(P, L, D)` text features from [`~SoftGroundingMattingPipeline.encode_prompt`], instead of
                `prompt` (e.g. to encode the prompts of a video once): row k stands for the k-th string of a list of
                P prompts, with the same rules (P mattes of a single image, one row per image, or one for all).

        The result does not depend on `batch_size` nor on the other items of a call (no randomness is involved).
        """
        # 1. Check the inputs
        if processing_resolution is None:
            processing_resolution = self.config.default_processing_resolution
        self.check_inputs(
            processing_resolution, resample_method_input, resample_method_output, batch_size, output_type,
            num_inference_steps,
        )  # fmt: skip
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Give exactly one of `prompt` and `prompt_embeds`.")
        images = load_images(image)
        device = self._execution_device  # looked up once: diffusers walks every module to find it

        # 2. Encode each distinct prompt once: text features (1, L, D) by prompt
        if prompt_embeds is not None:
            if prompt_embeds.ndim != 3:
                raise ValueError(f"`prompt_embeds` must be (P, L, D), got shape {tuple(prompt_embeds.shape)}.")
            prompt = [f"prompt_embeds[{k}]" for k in range(len(prompt_embeds))]
            text = dict(zip(prompt, prompt_embeds.to(device).split(1)))
        prompts = self.prompts_per_image(prompt, len(images))
        if prompt_embeds is None:
            distinct = list(dict.fromkeys(p for per_image in prompts for p in per_image))
            text = dict(zip(distinct, self.encode_prompt(distinct, device, batch_size).split(1)))

        # 3. Preprocess and encode each image once: pixels (1, 3, H', W') in [-1, 1], latents (1, 4, H'/8, W'/8).
        # Batches only join items whose padded grids are equal.
        prepared = [
            PreparedImage(im, *self.image_processor.preprocess(im, processing_resolution, resample_method_input))
            for im in images
        ]
        latents = {}
        for chunk in _batches(range(len(prepared)), [p.grid for p in prepared], batch_size):
            pixels = torch.cat([prepared[i].pixels for i in chunk]).to(device)
            latents.update(zip(chunk, self.encode_image(pixels, device).split(1)))

        # 4. Predict every (image, prompt) pair: one UNet step and the matting decoder
        pairs = [(i, p) for i, per_image in enumerate(prompts) for p in per_image]
        results, scores = [None] * len(pairs), [None] * len(pairs)
        for chunk in self.progress_bar(_batches(range(len(pairs)), [prepared[i].grid for i, _ in pairs], batch_size)):
            images_of_chunk = [pairs[k][0] for k in chunk]
            prediction = self.predict_alpha(
                torch.cat([prepared[i].pixels for i in images_of_chunk]).to(device),
                torch.cat([latents[i] for i in images_of_chunk]),
                torch.cat([text[pairs[k][1]] for k in chunk]),
                device,
            )

            # 5. Back to each input's frame: unpad, then resize (or refine) to the output size; score the grounding
            for j, k in enumerate(chunk):
                image, selected = prepared[pairs[k][0]], prediction.select(j)
                results[k] = self.postprocess_prediction(
                    image, selected, match_input_resolution, resample_method_output, device
                )
                scores[k] = self.score_grounding(image, selected)
        self.maybe_free_model_hooks()

        # 6. Format the outputs
        outputs = [self.image_processor.format_output([r[f] for r in results], output_type) for f in range(3)]
        if not return_dict:
            return tuple(outputs)
        grounding = torch.tensor(scores, dtype=torch.float32)  # "pil": a list of floats
        grounding = {"pt": grounding, "np": grounding.numpy()}.get(output_type, grounding.tolist())
        return SoftGroundingMattingOutput(*outputs, grounding_score=grounding)

    def score_grounding(self, prepared: PreparedImage, prediction: AlphaPrediction) -> float:
        """The [`grounding_score`] of one pair's prediction, read on the latent cells of its image (padding
        cropped), before any resizing: it does not depend on the output size, the batch or the other prompts."""
        coarse_alpha = prepared.crop_padding(prediction.coarse_alpha)
        transparency = prepared.crop_padding(prediction.transparency)
        return float(grounding_score(coarse_alpha, transparency)[0])

    def postprocess_prediction(
        self,
        prepared: PreparedImage,
        prediction: AlphaPrediction,
        match_input_resolution: bool = True,
        resample: str = "bilinear",
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pair's prediction back in its input's frame: unpad, then resize or refine to the output size.
        Returns CPU float tensors `(alpha, coarse_alpha, transparency)`, each `(1, 1, H, W)`."""
        padded_size, padding = prepared.grid, prepared.padding
        output_size = prepared.original_size if match_input_resolution else None
        post = self.image_processor.postprocess
        if self.refiner is not None and match_input_resolution:
            crop = (padded_size[0] - padding[0], padded_size[1] - padding[1])
            alpha_lr = prediction.alpha[..., : crop[0], : crop[1]]
            context = prediction.context[..., : crop[0], : crop[1]]
            alpha = self.refine(prepared.image, alpha_lr, context, device).float().clamp(0, 1).cpu()
        else:
            alpha = post(prediction.alpha, padded_size, padding, output_size, resample).cpu()
        size = tuple(alpha.shape[-2:])
        coarse_alpha = post(prediction.coarse_alpha, padded_size, padding, size, "bilinear").cpu()
        transparency = post(prediction.transparency, padded_size, padding, size, "bilinear").cpu()
        return alpha, coarse_alpha, transparency
