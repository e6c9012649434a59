# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`diffusers-matte predict`: one alpha PNG (or RGBA cut-out) per image and prompt.

What it writes, and where:

- `<output-dir>/<image stem>_<prompt name>_alpha.png` (or `_cutout.png`) per image and prompt, and
  `<output-dir>/diffusers-matte-outputs.json`, which maps each prompt to its name and each file to its image and
  prompt. A prompt's name is the prompt in lower case with runs of anything but letters and digits (of any
  script) turned into "-"; a short hash of the prompt is added when that name is cut at 40 characters, is empty,
  or is already an earlier prompt's (in the order of `--prompt`), so that names stay readable and unique. A prompt keeps the name the folder's
  JSON gave it before.
- Every file is written to a temporary file in the output folder, then renamed into place: an interrupted run
  leaves no half-written PNG, and a symbolic link in the output folder is never followed (one in the way of an
  output is refused).
- Existing outputs are refused unless `--overwrite` (replace them) or `--skip-existing` (keep them and compute
  only the missing ones, which continues an interrupted run). Files the folder's JSON lists as outputs are not
  read back as inputs when the output folder is also an input folder.
- Each output's entry in the JSON carries its `grounding_score` (in [0, 1]: how clearly the model finds what the
  prompt names in the image; see `SoftGroundingMattingOutput.grounding_score`). With `--min-score X`, a matte
  whose prompt scores below X is not written: the command says so for each such file, and the JSON lists it under
  `skipped` with its score. An earlier file at that path (kept by `--overwrite`) is left as it was.
- Under `accelerate launch -m diffusers_matte predict ...` with N processes, the images are split among the
  processes (contiguous shares), each with the model on its own device; the main process writes the JSON at the
  end. After an interruption, `--skip-existing` continues, and the JSON lists the kept files too.
"""

import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

from ..distributed import current_processes, process_device
from .common import (
    DEFAULT_MAX_MEGAPIXELS,
    OUTPUT_MANIFEST,
    UsageError,
    add_device_arguments,
    add_model_loading_arguments,
    add_vae_arguments,
    check_max_megapixels,
    check_output_dir,
    check_writable_target,
    expand_inputs,
    load_pipeline,
    make_output_dir,
    read_image,
    resolve_device_and_dtype,
    write_atomically,
)

MANIFEST_FORMAT = "diffusers-matte predict outputs"
MAX_NAME_LENGTH = 40


def register(subparsers) -> None:
    """Adds `diffusers-matte predict`."""
    parser = subparsers.add_parser(
        "predict",
        help="write the alpha matte (or an RGBA cut-out) of what each prompt names in each image",
        description="Write one alpha PNG (or RGBA cut-out) per image and prompt, named "
        "<image stem>_<prompt>_alpha.png (or _cutout.png), and diffusers-matte-outputs.json (which prompt and "
        "image each file comes from). Files are written to a temporary file and renamed into place; symbolic "
        "links in the output folder are refused, never followed.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders of images, or globs (folders and globs: .png .jpg .jpeg .bmp .gif .tif .tiff "
        ".webp; a file given by name is read whatever its extension)",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        required=True,
        help="what to matte; repeat for several mattes per image",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="pipeline folder or Hub id (default: the built-in demonstration model)",
    )
    parser.add_argument(
        "--output-dir",
        default="mattes",
        help="where to write the PNGs (default: ./mattes); must be a folder or a path where one can be created",
    )
    parser.add_argument(
        "--cutout",
        action="store_true",
        help="write RGBA cut-outs with estimated foreground colours",
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep existing output files and compute only the missing ones (continues an interrupted run)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=None,
        help=f"refuse images of more million pixels, before decoding them (default: {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    add_model_loading_arguments(parser)
    add_vae_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument(
        "--processing-resolution",
        type=int,
        default=None,
        help="longest edge the models see",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="prompts of one image run together")
    parser.add_argument(
        "--min-score",
        type=float,
        default=None,
        metavar="X",
        help="do not write the mattes of prompts whose grounding score (0 to 1, in the JSON) is below X: the prompt "
        "probably names nothing in that image",
    )
    parser.set_defaults(run=run_predict)


# File names --------------------------------------------------------------------------------------------------------


def slugify(text: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """A readable, file-name-safe version of a prompt: NFKC-normalised, lower case, each run of characters that
    are not letters, marks or digits (of any script) turned into "-", cut at `max_length` characters."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c if unicodedata.category(c)[0] in "LMN" else "-" for c in text)
    return re.sub(r"-+", "-", kept).strip("-")[:max_length].strip("-")


def _short_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]


def prompt_names(prompts: list[str], known: dict[str, str] | None = None) -> dict[str, str]:
    """Prompt -> the name its files carry, unique among `prompts` and the names in `known` (the names an
    earlier run gave, which are kept). See the module docstring for the rule."""
    known = dict(known or {})
    names = {p: known[p] for p in prompts if p in known}
    taken = set(known.values())
    for prompt in (p for p in prompts if p not in names):
        slug = slugify(prompt)
        cut = slug != slugify(prompt, max_length=sys.maxsize)
        if not slug or cut or slug in taken:  # first come keeps the plain name
            slug = f"{slug}-{_short_hash(prompt)}" if slug else f"prompt-{_short_hash(prompt)}"
        while slug in taken:  # two hashes that agree on 8 digits: lengthen until unique
            slug = f"{slug}-{_short_hash(slug)}"
        names[prompt] = slug
        taken.add(slug)
    return names


def output_paths(
    images: list[Path], prompts: list[str], output_dir: Path, cutout: bool, names: dict[str, str] | None = None
) -> list[list[Path]]:
    """`<output_dir>/<stem>_<prompt name>_{alpha,cutout}.png` per image and prompt; refuses two images whose
    outputs would share a name (the same stem in two folders)."""
    kind = "cutout" if cutout else "alpha"
    names = names or prompt_names(prompts)
    targets, owners = [], {}
    for image in images:
        row = [output_dir / f"{image.stem}_{names[prompt]}_{kind}.png" for prompt in prompts]
        if row[0] in owners:
            raise UsageError(f"{str(owners[row[0]])!r} and {str(image)!r} would write the same outputs; rename one")
        owners[row[0]] = image
        targets.append(row)
    return targets


# The outputs' JSON ---------------------------------------------------------------------------------------------------


def read_manifest(output_dir: Path) -> dict:
    """The folder's `OUTPUT_MANIFEST`, or an empty one; a file of that name that is not ours is refused."""
    path = output_dir / OUTPUT_MANIFEST
    empty = {"format": MANIFEST_FORMAT, "prompts": {}, "outputs": {}}
    if not check_writable_target(path):
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {str(path)!r}: {error}; move it away to start a new list of outputs") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise UsageError(
            f"{str(path)!r} was not written by diffusers-matte predict; move it away or use another folder"
        )
    return {**empty, **data}


def _record(manifest: dict, outputs: dict, skipped: dict) -> None:
    """Adds written files to the JSON's `outputs` and files left out under `--min-score` to its `skipped` (a file
    written now is no longer skipped)."""
    manifest["outputs"].update(outputs)
    if skipped or manifest.get("skipped"):
        left_out = manifest.setdefault("skipped", {})
        left_out.update(skipped)
        for name in outputs:
            left_out.pop(name, None)


def _skip_note(target: Path, score: float, min_score: float) -> str:
    earlier = "; the earlier file there is left as it was" if target.exists() else ""
    return (
        f"skipped {target.name}: grounding score {score:.3f} < --min-score {min_score:g} (the prompt may name "
        f"nothing in the image){earlier}"
    )


def write_manifest(output_dir: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    write_atomically(output_dir / OUTPUT_MANIFEST, lambda handle: handle.write(text.encode("utf-8")))


# The command ---------------------------------------------------------------------------------------------------------


def run_predict(args) -> int:
    prompts = list(dict.fromkeys(p.strip() for p in args.prompt))
    if any(not p for p in prompts):
        raise UsageError("--prompt must not be empty; describe the object to matte")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.processing_resolution is not None and args.processing_resolution < 0:
        raise UsageError(f"--processing-resolution must be >= 0, got {args.processing_resolution}")
    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise UsageError(f"--min-score must be a number in [0, 1], got {args.min_score}")
    max_megapixels = check_max_megapixels(args.max_megapixels)
    output_dir = check_output_dir(Path(args.output_dir))
    paths = expand_inputs(args.inputs)
    manifest = read_manifest(output_dir)
    names = prompt_names(prompts, manifest["prompts"])
    targets = output_paths(paths, prompts, output_dir, args.cutout, names)
    inputs = {path.resolve() for path in paths}
    clash = next((t for row in targets for t in row if t.resolve() in inputs), None)
    if clash is not None:
        raise UsageError(f"{str(clash)!r} is an input and would be an output; choose another --output-dir")
    existing = [t for row in targets for t in row if check_writable_target(t)]
    if existing and not (args.overwrite or args.skip_existing):
        raise UsageError(
            f"{len(existing)} output file(s) already exist, e.g. {str(existing[0])!r}; pass --skip-existing to keep "
            "them and compute the rest, or --overwrite to replace them"
        )
    skip = set(existing) if args.skip_existing else set()
    for path in paths:  # refuse unreadable images before any model work
        read_image(path, max_megapixels)
    todo = [(path, row) for path, row in zip(paths, targets) if any(t not in skip for t in row)]
    if not todo:
        print(f"all {len(skip)} output file(s) exist already in {output_dir}; nothing to do", file=sys.stderr)
        return 0
    processes = current_processes()
    processes.wait_for_everyone()  # every process has checked the folder before any writes to it
    device, dtype = resolve_device_and_dtype(process_device(args.device, processes), args.dtype)
    pipe = load_pipeline(
        args.model,
        device,
        dtype,
        args.trust_remote_code,
        args.allow_pickle,
        announce=processes.is_main_process,
        vae=args.vae,
        fast=args.fast,
    )

    from tqdm.auto import tqdm

    from ..pipelines.soft_grounding.image_processor import alpha_to_pil, cutout

    make_output_dir(output_dir)
    manifest["prompts"].update(names)
    for path, row in zip(paths, targets):  # kept files an interrupted run wrote but did not list
        for prompt, target in zip(prompts, row):
            if target in skip and target.name not in manifest["outputs"]:
                manifest["outputs"][target.name] = {"image": str(path.resolve()), "prompt": prompt}
    outputs, skipped = {}, {}  # what this process writes, and what it leaves out under --min-score
    share = processes.split(todo)
    for path, row in tqdm(share, desc="matting", unit="image", disable=not processes.is_main_process):
        image = read_image(path, max_megapixels)
        wanted = [(prompt, target) for prompt, target in zip(prompts, row) if target not in skip]
        prediction = pipe(
            image,
            [prompt for prompt, _ in wanted],
            processing_resolution=args.processing_resolution,
            batch_size=args.batch_size,
            output_type="pt",
        )
        for alpha, score, (prompt, target) in zip(prediction.alpha, prediction.grounding_score.tolist(), wanted):
            entry = {"image": str(path.resolve()), "prompt": prompt, "grounding_score": round(score, 4)}
            if args.min_score is not None and score < args.min_score:
                skipped[target.name] = entry
                tqdm.write(_skip_note(target, score, args.min_score), file=sys.stderr)
                continue
            result = cutout(image, alpha[None]) if args.cutout else alpha_to_pil(alpha)
            check_writable_target(target)  # a link put there during the run is refused too
            write_atomically(target, lambda handle: result.save(handle, format="PNG"))
            outputs[target.name] = entry
        if not processes.is_distributed:  # one process: the JSON follows each image
            _record(manifest, outputs, skipped)
            write_manifest(output_dir, manifest)
    written, left_out = 0, 0
    for done, not_written in processes.gather_object((outputs, skipped)):
        _record(manifest, done, not_written)
        written, left_out = written + len(done), left_out + len(not_written)
    if not processes.is_main_process:
        return 0
    write_manifest(output_dir, manifest)
    kept = f", kept {len(skip)} existing" if skip else ""
    below = f", skipped {left_out} below --min-score {args.min_score:g}" if args.min_score is not None else ""
    renamed = [f"{p!r} -> {names[p]}" for p in prompts if names[p] != slugify(p)]
    note = f" (file names: {'; '.join(renamed)})" if renamed else ""
    print(
        f"wrote {written} file(s) to {output_dir}{kept}{below}; prompts, files and grounding scores in "
        f"{OUTPUT_MANIFEST}{note}",
        file=sys.stderr,
    )
    return 0
