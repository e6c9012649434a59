# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What the subcommands share: the error they raise for bad input, reading images, loading the pipeline.

Heavy libraries (torch, the pipeline) are imported inside the functions, so that `diffusers-matte --help` is fast.
"""

import argparse
import contextlib
import functools
import glob
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

# What a folder or a glob contributes; a file named on the command line is read whatever its extension.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# `--max-megapixels` when not given (the same as `image_processor.DEFAULT_MAX_MEGAPIXELS`, kept here so that
# building the parser imports no heavy library).
DEFAULT_MAX_MEGAPIXELS = 50.0
# The demonstration checkpoint shipped inside the package (a pipeline folder written by `save_pretrained`).
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo_model"
EXIT_USAGE = 2
# Written by `predict` next to its outputs: which prompt and image each file comes from.
OUTPUT_MANIFEST = "diffusers-matte-outputs.json"
# The subfolder of a model folder whose AutoencoderTiny `--fast` runs with.
FAST_VAE_SUBFOLDER = "vae_tiny"


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def add_device_arguments(parser: argparse.ArgumentParser, per_process: bool = False) -> None:
    """`--device` and `--dtype`, as every command that runs the model takes them (see `resolve_device_and_dtype`).

    Args:
        per_process: the command runs one process per device under `accelerate launch` (it passes `--device`
            through `distributed.process_device`, which picks each process's own), and the help says so.
    """
    launched = "; under accelerate launch, each process's own" if per_process else ""
    parser.add_argument(
        "--device",
        default=None,
        help=f"torch device (default: cuda, then mps, then cpu{launched})",
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "float16", "bfloat16"),
        help="model precision (default: float16 on cuda, float32 elsewhere)",
    )


def option_spellings(name: str, underscored: bool) -> list[str]:
    """`--max-samples` -> `["--max-samples", "--max_samples"]` when `underscored` (the training scripts'
    spelling; argparse stores both under `max_samples`), else `["--max-samples"]`."""
    if not underscored:
        return [name]
    return list(dict.fromkeys((name, "--" + name[2:].replace("-", "_"))))


def add_model_loading_arguments(parser: argparse.ArgumentParser, underscored: bool = False) -> None:
    """`--trust-remote-code` and `--allow-pickle`, as every command that loads a model takes them (both off by
    default; the command passes them to `load_pipeline`, which says what each allows).

    Args:
        underscored: also accept `--trust_remote_code` and `--allow_pickle` (see `option_spellings`).
    """
    parser.add_argument(
        *option_spellings("--trust-remote-code", underscored),
        action="store_true",
        help="run code the model folder carries that is not diffusers-matte's own (read it first)",
    )
    parser.add_argument(
        *option_spellings("--allow-pickle", underscored),
        action="store_true",
        help="load .bin (pickle) weights when a model has no .safetensors; unpickling can run code",
    )


def add_vae_arguments(parser: argparse.ArgumentParser) -> None:
    """`--vae PATH` and `--fast` (one or the other), as every command that loads a model takes them; the command
    passes them to `load_pipeline`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--vae",
        default=None,
        metavar="PATH",
        help="run with the VAE at PATH in place of the model's own: an AutoencoderTiny (the fast mode, "
        "training/train_tiny_encoder.py) or AutoencoderKL folder, or a folder or Hub id holding one in vae/",
    )
    group.add_argument(
        "--fast",
        action="store_true",
        help=f"fast mode: run with the AutoencoderTiny in the model's {FAST_VAE_SUBFOLDER}/ (--vae "
        f"MODEL/{FAST_VAE_SUBFOLDER}); a model whose own VAE is an AutoencoderTiny runs as it is",
    )


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage block) and exit with code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def recorded_outputs(folder: Path) -> set[str]:
    """Names of the files that `diffusers-matte predict` wrote into `folder`, from its `OUTPUT_MANIFEST` there
    (empty when there is none or it cannot be read), so that a later run over the folder does not take its own
    outputs for inputs."""
    try:
        data = json.loads((Path(folder) / OUTPUT_MANIFEST).read_text(encoding="utf-8"))
        return {str(name) for name in data.get("outputs", {})} if isinstance(data, dict) else set()
    except (OSError, ValueError, AttributeError):
        return set()


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths, in order, without repeats.

    Folders and globs contribute the files whose extension is in `IMAGE_EXTENSIONS` (the same rule for both),
    except those that `predict` recorded as its outputs (`recorded_outputs`); a file named on its own is always
    taken.
    """
    paths = []
    outputs: dict[Path, set[str]] = {}

    def is_output(path: Path) -> bool:
        if path.parent not in outputs:
            outputs[path.parent] = recorded_outputs(path.parent)
        return path.name in outputs[path.parent]

    def images_among(candidates) -> tuple[list[Path], int]:
        found = [p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        kept = [p for p in found if not is_output(p)]
        return kept, len(found) - len(kept)

    for item in inputs:
        if glob.has_magic(item):
            matches, skipped = images_among(sorted(Path(p) for p in glob.glob(item, recursive=True)))
            if not matches:
                raise UsageError(f"no image matches {item!r}{_skipped_note(skipped)}")
            paths.extend(matches)
        elif os.path.isdir(item):
            found, skipped = images_among(sorted(Path(item).iterdir()))
            if not found:
                raise UsageError(
                    f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {item!r}{_skipped_note(skipped)}"
                )
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(Path(item))
        else:
            raise UsageError(f"no such file or folder: {item!r}")
    return list(dict.fromkeys(paths))


def _skipped_note(skipped: int) -> str:
    return f" ({skipped} earlier output(s) of diffusers-matte predict left out)" if skipped else ""


def check_output_dir(output_dir: Path, option: str = "--output-dir") -> Path:
    """Refuse, before any model work, an output folder that is a file or that cannot be created or written.

    The folder is not created here (see `make_output_dir`), so a run refused later leaves nothing behind.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() or output_dir.is_symlink():
        if not output_dir.is_dir():
            what = "a broken symbolic link" if not output_dir.exists() else "a file"
            raise UsageError(f"{option} {str(output_dir)!r} is {what}, not a folder")
        if not os.access(output_dir, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {str(output_dir)!r} is not writable")
        return output_dir
    ancestor = output_dir.absolute().parent
    while not ancestor.exists() and not ancestor.is_symlink():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{option} {str(output_dir)!r} cannot be created: {str(ancestor)!r} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {str(output_dir)!r} cannot be created: {str(ancestor)!r} is not writable")
    return output_dir


def make_output_dir(output_dir: Path, option: str = "--output-dir") -> Path:
    """Create the output folder (and its parents); a failure is a `UsageError`."""
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {option} {str(output_dir)!r}: {error.strerror or error}") from None
    return Path(output_dir)


def check_writable_target(target: Path) -> bool:
    """Whether `target` exists as a regular file. A symbolic link (dangling or not) or a folder in its place is a
    `UsageError`: outputs are never written through links."""
    if target.is_symlink():
        raise UsageError(
            f"{str(target)!r} is a symbolic link; diffusers-matte never writes through links: remove it or "
            "choose another --output-dir"
        )
    if target.exists() and not target.is_file():
        raise UsageError(f"{str(target)!r} exists and is not a file; remove it or choose another --output-dir")
    return target.exists()


@functools.lru_cache(maxsize=None)
def _file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file without ever leaving a partial one or following a link: `write(handle)` fills a new
    temporary file in the same folder (a hidden `.<name>.<random>.partial`), which then replaces `target` with
    `os.replace` (a symbolic link at `target` is replaced, never followed). On failure the temporary file is
    removed and `target` is untouched."""
    target = Path(target)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        if hasattr(os, "fchmod"):  # mkstemp's files are private (0600); outputs get the usual permissions
            os.fchmod(descriptor, _file_mode())
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def check_max_megapixels(value: float | None) -> float | None:
    """`--max-megapixels` as given (None: the default); refuses a value that is not positive."""
    if value is None:
        return DEFAULT_MAX_MEGAPIXELS
    if not value > 0:
        raise UsageError(f"--max-megapixels must be positive, got {value:g}")
    return value


def read_image(path: Path, max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS):
    """Open and convert one image file, as people see it (EXIF orientation applied, CMYK, 1-bit, 16- and
    32-bit modes converted: `image_processor.open_image` and `load_image`), to a `(1, 3, H, W)` float tensor
    in [0, 1]. An image of more than `max_megapixels` million pixels is refused before it is decoded.

    Any failure is a `UsageError` naming the file (and, for a large image, the option that lets it through).
    """
    import PIL.Image

    from ..pipelines.soft_grounding.image_processor import ImageTooLargeError, load_image, open_image

    try:
        return load_image(open_image(path, max_megapixels))
    except ImageTooLargeError as error:
        hint = "" if "decompression bomb" in str(error) else "; pass a larger --max-megapixels to read it"
        raise UsageError(f"cannot read image: {error}{hint}") from None
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        reason = str(error).split(". Expected")[0].replace("`image[0]` ", "")
        raise UsageError(f"cannot read image {str(path)!r}: {reason}") from None


def resolve_device_and_dtype(device: str | None, dtype: str | None):
    """`--device` and `--dtype` as given (None: not given) -> `(torch.device, torch.dtype)`.

    The device defaults to cuda, then mps, then cpu, whichever torch sees first; the precision to float16 on cuda
    and float32 elsewhere. A device torch does not know, or cuda where torch sees none, is a `UsageError`.
    """
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise UsageError(f"invalid --device {device!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    if dtype is None:
        dtype = "float16" if device.type == "cuda" else "float32"
    return device, getattr(torch, dtype)


def load_pipeline(
    model: str | None,
    device,
    dtype,
    trust_remote_code: bool = False,
    allow_pickle: bool = True,
    announce: bool = True,
    vae: str | None = None,
    fast: bool = False,
):
    """Load the pipeline from `model`, or from the demonstration checkpoint shipped in the package.

    Args:
        model: a pipeline folder or Hub id; None for the demonstration checkpoint (one line on stderr says so
            when `announce`).
        trust_remote_code: run code that the folder carries and that is not diffusers-matte's own (a folder written
            by `save_pretrained_with_code` from our classes loads without it).
        allow_pickle: load `.bin` (pickle) weights when a component has no `.safetensors` file; when False such a
            folder is refused before anything is loaded (unpickling can run code).
        vae: `--vae`, the VAE to run with in place of the model's own (`pipeline_soft_grounding.load_vae`).
        fast: `--fast`, the same with the model's `FAST_VAE_SUBFOLDER` (see `fast_vae_subfolder`).

    Any loading failure is a `UsageError` of one line.
    """
    from ..pipelines import SoftGroundingMattingPipeline

    if model is None:
        if not (DEMO_MODEL_DIR / "model_index.json").is_file():
            raise UsageError(
                f"no --model given and this installation has no demonstration checkpoint (looked in "
                f"{DEMO_MODEL_DIR}); pass --model with a pipeline folder or a Hub id"
            )
        if announce:
            print(
                "diffusers-matte: using the built-in demonstration model (small, trained on synthetic scenes only); "
                "pass --model for a real checkpoint",
                file=sys.stderr,
            )
        model = str(DEMO_MODEL_DIR)
    if not allow_pickle and os.path.isdir(model):
        pickled = pickle_only_components(Path(model))
        if pickled:
            raise UsageError(
                f"the model {model!r} has only pickle (.bin) weights for {', '.join(pickled)}; loading them can run "
                "code from the files: pass --allow-pickle if you trust them, or convert them to .safetensors"
            )
    use_safetensors = None if allow_pickle else True
    overrides = vae_override(model, vae, fast, dtype, allow_pickle)
    try:
        with _quiet_loading():
            pipe = SoftGroundingMattingPipeline.from_pretrained(
                model, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=use_safetensors, **overrides
            )
    except Exception as error:  # any loading failure is reported as one line
        reason = _loading_reason(error, trust_remote_code, allow_pickle)
        raise UsageError(f"cannot load the model {model!r}: {reason}") from None
    if overrides:
        from ..pipelines.soft_grounding.pipeline_soft_grounding import check_vae_matches_unet

        try:
            check_vae_matches_unet(pipe.vae, pipe.unet, f"the VAE of {_vae_option(model, vae)}")
        except ValueError as error:
            raise UsageError(str(error)) from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def fast_vae_subfolder(model: str) -> str | None:
    """What `--fast` runs `model` with: its `FAST_VAE_SUBFOLDER` when it has one, None when its own VAE is an
    `AutoencoderTiny` already; otherwise a `UsageError` saying how to make one."""
    from ..pipelines.soft_grounding.pipeline_soft_grounding import read_model_config

    for subfolder in (FAST_VAE_SUBFOLDER, "vae"):
        try:
            config = read_model_config(model, subfolder)
        except EnvironmentError:
            continue
        if subfolder == FAST_VAE_SUBFOLDER:
            return subfolder
        if config.get("_class_name") == "AutoencoderTiny":
            return None
    raise UsageError(
        f"--fast: the model {model!r} has no {FAST_VAE_SUBFOLDER}/ (an AutoencoderTiny) and its own VAE is not one; "
        f"distil one with training/train_tiny_encoder.py --pretrained_model_name_or_path {model} and copy its vae/ "
        f"to {os.path.join(model, FAST_VAE_SUBFOLDER)}, or pass --vae PATH"
    )


def vae_override(model: str, vae: str | None, fast: bool, dtype, allow_pickle: bool) -> dict:
    """The component override that `--vae` or `--fast` asks for, `{"vae": the VAE}` (`load_vae`), or `{}` (the
    model's own VAE). Any failure is a `UsageError` of one line."""
    from ..pipelines.soft_grounding.pipeline_soft_grounding import load_vae

    subfolder = fast_vae_subfolder(model) if fast else None
    if vae is None and subfolder is None:
        return {}
    path, option = (model, "--fast: the model") if fast else (vae, "--vae")
    try:
        with _quiet_loading():
            loaded = load_vae(path, subfolder, option, dtype=dtype, use_safetensors=None if allow_pickle else True)
    except ValueError as error:  # no VAE there
        raise UsageError(str(error)) from None
    except Exception as error:  # a VAE that is there but does not load
        reason = _loading_reason(error, False, allow_pickle)
        raise UsageError(f"cannot load the VAE of {_vae_option(model, vae)}: {reason}") from None
    return {"vae": loaded}


def _vae_option(model: str, vae: str | None) -> str:
    """How the errors name the VAE `--vae` or `--fast` asked for."""
    return f"--vae {vae!r}" if vae is not None else f"--fast ({os.path.join(model, FAST_VAE_SUBFOLDER)!r})"


@contextlib.contextmanager
def _quiet_loading():
    """No "Loading pipeline components" / "Loading weights" bars from diffusers and transformers while loading (a
    Hub download keeps huggingface_hub's own progress)."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    enabled = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in enabled:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, was_enabled in enabled:
            if was_enabled:
                lib.enable_progress_bar()


def _loading_reason(error: Exception, trust_remote_code: bool, allow_pickle: bool) -> str:
    text = str(error).strip()
    if not trust_remote_code and "trust_remote_code" in text:
        where = re.search(r"custom code in (\S+)", text)
        found = f" ({where.group(1)})" if where else ""
        return f"it carries code that is not diffusers-matte's own{found}; read it, and pass --trust-remote-code to run it"
    first = text.splitlines()[0] if text else type(error).__name__
    if not allow_pickle and "safetensors" in text:
        first += " (pass --allow-pickle to load .bin weights you trust)"
    return first


def pickle_only_components(folder: Path) -> list[str]:
    """The subfolders of a pipeline folder whose weights are only pickle files (`*.bin`, `*.pt`, `*.ckpt`), with
    no `.safetensors` next to them. Where `model_index.json` names the components, only their folders count: a
    training run's output also holds `checkpoint-N/` folders of accelerate state, which the pipeline never loads."""
    index = folder / "model_index.json"
    components = None
    if index.is_file():
        components = {name for name in json.loads(index.read_text()) if not name.startswith("_")}
    pickled = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and (components is None or p.name in components)):
        names = [p.name for p in sub.iterdir() if p.is_file()]
        has_pickle = any(n.endswith((".bin", ".pt", ".pth", ".ckpt")) for n in names)
        if has_pickle and not any(n.endswith(".safetensors") for n in names):
            pickled.append(sub.name)
    return pickled
