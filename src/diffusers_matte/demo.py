# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""A Gradio web demo of `SoftGroundingMattingPipeline`: an image and one prompt per line in, for each prompt the
alpha matte, the cut-out over a checkerboard, the coarse alpha and the transparency map out, with PNG downloads.

    from diffusers_matte.demo import create_demo, launch_demo

    demo = create_demo(pipe)            # the pipeline is loaded once, by the caller
    launch_demo(demo)                   # http://127.0.0.1:7860, this machine only

`diffusers-matte demo` does the same from the command line and `examples/app.py` is the entry point of a Hugging
Face Space. Requests run one at a time (a queue with a concurrency limit of 1 per pipeline). Images are checked
before any model work: formats other than PNG, JPEG, WebP, BMP and TIFF, and images above `max_megapixels`, are
refused with a message in the page.

The checks and the matting (`read_upload`, `parse_prompts`, `DemoMatter`) need no Gradio; only `create_demo` and
`launch_demo` import it (`pip install "diffusers-matte[demo]"`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import PIL.Image

from .pipelines.soft_grounding.image_processor import alpha_to_pil, cutout, load_image, open_image

if TYPE_CHECKING:
    import gradio
    import torch

    from .pipelines import SoftGroundingMattingPipeline

DEFAULT_MAX_MEGAPIXELS = 16.0
MAX_PROMPTS = 8
# PIL format names of the files the demo accepts, those `diffusers-matte predict` takes from a folder (icons,
# Photoshop files, PDFs, ... that PIL could also open are refused).
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
# The repository's examples (images and prompts); absent from an installed wheel, then the demo has none.
EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "examples" / "gallery.json"
CHECKER_SQUARE = 8
CHECKER_COLOURS = (255, 204)  # light and dark grey squares behind transparent pixels
# How many requests' downloadable PNGs are kept on disk (Gradio copies them to its own cache when it serves them).
KEPT_REQUESTS = 8

TITLE = "diffusers-matte: text-grounded alpha matting"
DESCRIPTION = (
    "Upload an image and describe what to cut out, one prompt per line (for example *the orange box*). For each "
    "prompt you get the alpha matte, the cut-out over a checkerboard, the UNet's coarse alpha and its transparency "
    "map, and PNG downloads of the alpha and of the RGBA cut-out."
)


class DemoInputError(ValueError):
    """An input the demo refuses (bad file, too large, no prompt); its message is shown to the user as is."""


# Input checks ----------------------------------------------------------------------------------------------------


def read_upload(path: str | Path | None, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> "torch.Tensor":
    """Open an uploaded image file and return it as a `(1, 3, H, W)` float tensor in [0, 1].

    The format and the size are read from the header before the pixels are decoded, so an oversized image is
    refused without being loaded; the pixels are then read as the command line reads them (`open_image`: EXIF
    orientation applied, any mode converted, the first frame of an animation).

    Raises:
        DemoInputError: no file, not an image, a format outside `SUPPORTED_FORMATS`, more than `max_megapixels`
            million pixels, or an image that cannot be decoded.
    """
    if path is None:
        raise DemoInputError("Upload an image first.")
    name = Path(path).name
    try:
        with PIL.Image.open(path) as header:  # the format and the size; no pixel is decoded yet
            image_format, (width, height) = header.format, header.size
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise DemoInputError(f"{name} cannot be read as an image: {error}.") from None
    if image_format not in SUPPORTED_FORMATS:
        raise DemoInputError(
            f"{name}: {image_format or 'this'} files are not supported; upload a "
            f"{', '.join(SUPPORTED_FORMATS[:-1])} or {SUPPORTED_FORMATS[-1]} image."
        )
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise DemoInputError(
            f"{name} is {width}x{height} ({megapixels:.3g} megapixels), above this demo's limit of "
            f"{max_megapixels:g} megapixels; upload a smaller image."
        )
    try:
        return load_image(open_image(path, max_megapixels))
    except (OSError, ValueError) as error:
        reason = str(error).split(". Expected")[0]
        raise DemoInputError(f"{name} cannot be read as an image: {reason}.") from None


def parse_prompts(text: str | None, max_prompts: int = MAX_PROMPTS) -> list[str]:
    """One prompt per non-empty line, stripped, repeats dropped (first kept).

    Raises:
        DemoInputError: no prompt, or more than `max_prompts`.
    """
    prompts = list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))
    if not prompts:
        raise DemoInputError("Describe what to matte, one prompt per line (for example: the orange box).")
    if len(prompts) > max_prompts:
        raise DemoInputError(f"{len(prompts)} prompts given; this demo takes at most {max_prompts} at a time.")
    return prompts


def _slug(text: str) -> str:
    """A file-name-safe version of a prompt, as `diffusers-matte predict` names its files."""
    from .cli.predict import slugify

    return slugify(text)


# Pictures --------------------------------------------------------------------------------------------------------


def over_checkerboard(rgba: PIL.Image.Image, square: int = CHECKER_SQUARE) -> PIL.Image.Image:
    """An RGBA image composited over a grey checkerboard, the usual way to show transparency; returns RGB."""
    width, height = rgba.size
    rows, columns = np.indices((height, width)) // square
    shade = np.where((rows + columns) % 2 == 0, *CHECKER_COLOURS).astype(np.uint8)
    board = PIL.Image.fromarray(np.repeat(shade[..., None], 3, axis=-1), mode="RGB")
    board.paste(rgba, (0, 0), rgba)
    return board


@dataclass
class PromptResult:
    """What the demo shows and offers for one prompt."""

    prompt: str
    alpha: PIL.Image.Image  # 8-bit grayscale, the image's size
    cutout: PIL.Image.Image  # RGBA: estimated foreground colours, alpha as the alpha channel
    coarse_alpha: PIL.Image.Image  # the UNet's low-resolution alpha, up-sampled
    transparency: PIL.Image.Image  # the UNet's transparency confidence, up-sampled

    @property
    def preview(self) -> PIL.Image.Image:
        """The cut-out over a checkerboard."""
        return over_checkerboard(self.cutout)


class DemoMatter:
    """The demo's work on one request: checks, one pipeline call for all prompts, pictures and PNG files.

    Args:
        pipe: the loaded pipeline (kept for the demo's lifetime).
        max_megapixels: larger uploads are refused.
        max_prompts: more prompts per request are refused.
        processing_resolution: passed to the pipeline; `None` uses the pipeline's default.
        output_dir: where each request's PNGs are written, in a sub-folder of its own (default: a new temporary
            folder); the files of the last `KEPT_REQUESTS` requests are kept.
    """

    def __init__(
        self,
        pipe: "SoftGroundingMattingPipeline",
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
        max_prompts: int = MAX_PROMPTS,
        processing_resolution: int | None = None,
        output_dir: str | Path | None = None,
    ):
        if max_megapixels <= 0:
            raise ValueError(f"`max_megapixels` must be positive, got {max_megapixels}.")
        self.pipe = pipe
        self.max_megapixels = max_megapixels
        self.max_prompts = max_prompts
        self.processing_resolution = processing_resolution
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="diffusers-matte-demo-"))
        self._requests: list[Path] = []

    def matte(self, image_path: str | Path | None, prompts_text: str | None) -> list[PromptResult]:
        """Check the inputs, then matte every prompt of the image in one pipeline call (the image is encoded once).

        Raises:
            DemoInputError: see `read_upload` and `parse_prompts`.
        """
        prompts = parse_prompts(prompts_text, self.max_prompts)  # the cheap check first
        image = read_upload(image_path, self.max_megapixels)
        output = self.pipe(image, prompts, processing_resolution=self.processing_resolution, output_type="pt")
        return [
            PromptResult(
                prompt=prompt,
                alpha=alpha_to_pil(alpha),
                cutout=cutout(image, alpha[None]),
                coarse_alpha=alpha_to_pil(coarse),
                transparency=alpha_to_pil(transparency),
            )
            for prompt, alpha, coarse, transparency in zip(
                prompts, output.alpha, output.coarse_alpha, output.transparency
            )
        ]

    def save(self, results: Sequence[PromptResult], image_name: str) -> list[Path]:
        """Write `<image>_<prompt>_alpha.png` and `<image>_<prompt>_cutout.png` for each result, in a new folder."""
        folder = self.output_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        self._requests.append(folder)
        while len(self._requests) > KEPT_REQUESTS:
            shutil.rmtree(self._requests.pop(0), ignore_errors=True)
        stem = Path(image_name).stem or "image"
        files, used = [], set()
        for index, result in enumerate(results, start=1):
            slug = _slug(result.prompt)
            if slug in used:  # two prompts that differ only in punctuation
                slug = f"{slug}-{index}"
            used.add(slug)
            for kind, picture in (("alpha", result.alpha), ("cutout", result.cutout)):
                path = folder / f"{stem}_{slug}_{kind}.png"
                picture.save(path)
                files.append(path)
        return files

    def __call__(self, image_path: str | None, prompts_text: str | None) -> tuple:
        """The Gradio event handler: the four galleries (alpha, cut-out, coarse alpha, transparency; one captioned
        picture per prompt) and the downloadable files. A refused input is shown as an error message in the page."""
        import gradio as gr

        try:
            results = self.matte(image_path, prompts_text)
        except DemoInputError as error:
            raise gr.Error(str(error), print_exception=False) from None
        files = self.save(results, Path(image_path).name)
        galleries = tuple(
            [(getattr(r, field), r.prompt) for r in results]
            for field in ("alpha", "preview", "coarse_alpha", "transparency")
        )
        return (*galleries, [str(f) for f in files])


# The app ---------------------------------------------------------------------------------------------------------


def load_examples(spec: str | Path | None = EXAMPLES_FILE) -> list[list[str]]:
    """`[image path, prompts one per line]` rows from a gallery spec (examples/gallery.json: a list of
    {"image": path relative to the file, "prompts": [...]}). A missing file gives no examples."""
    if spec is None or not Path(spec).is_file():
        return []
    spec = Path(spec)
    entries = json.loads(spec.read_text(encoding="utf-8"))
    return [[str((spec.parent / entry["image"]).resolve()), "\n".join(entry["prompts"])] for entry in entries]


def _theme():
    """Gradio's default theme with system fonts: the page then asks no font server for anything."""
    import gradio as gr

    system = ("ui-sans-serif", "system-ui", "sans-serif")
    return gr.themes.Default(font=system, font_mono=("ui-monospace", "monospace"))


def create_demo(
    pipe: "SoftGroundingMattingPipeline",
    *,
    examples: str | Path | Sequence[Sequence[str]] | None = EXAMPLES_FILE,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    max_prompts: int = MAX_PROMPTS,
    processing_resolution: int | None = None,
    title: str = TITLE,
    description: str = DESCRIPTION,
) -> "gradio.Blocks":
    """Build the Gradio app around a loaded pipeline; call `launch_demo` (or `.launch()`) on the result.

    Args:
        pipe: the pipeline, loaded once by the caller and used by every request.
        examples: a gallery spec file (see `load_examples`; default: the repository's examples/gallery.json,
            when it exists), or rows `[image path, prompts one per line]`, or None for no examples.
        max_megapixels: larger uploads are refused with a message.
        max_prompts: the most prompts per request.
        processing_resolution: the resolution of grounding (`None`: the pipeline's default).
        title, description: the page's heading and the text under it (Markdown).

    Requests are queued and run one at a time on the pipeline (`concurrency_limit=1`).
    """
    import gradio as gr

    matter = DemoMatter(pipe, max_megapixels, max_prompts, processing_resolution)
    rows = load_examples(examples) if examples is None or isinstance(examples, (str, Path)) else examples

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {title}\n\n{description}")
        with gr.Row():
            with gr.Column(scale=1):
                # image_mode=None and type="filepath": the uploaded file reaches `read_upload` untouched.
                image = gr.Image(
                    label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard"], elem_id="image"
                )
                prompts = gr.Textbox(
                    label="Prompts, one per line",
                    info="Enter starts a new prompt, Shift+Enter runs.",
                    lines=3,
                    placeholder="the orange box\nthe triangle",
                    elem_id="prompts",
                )
                submit = gr.Button("Matte", variant="primary", elem_id="submit")
                gr.Markdown(
                    f"Images up to {max_megapixels:g} megapixels ({', '.join(SUPPORTED_FORMATS)}), "
                    f"up to {max_prompts} prompts."
                )
            with gr.Column(scale=2):
                with gr.Row():
                    alpha = gr.Gallery(label="Alpha", format="png", columns=4, height=300, elem_id="alpha")
                    preview = gr.Gallery(label="Cut-out", format="png", columns=4, height=300, elem_id="cutout")
                with gr.Row():
                    coarse = gr.Gallery(
                        label="Coarse alpha (UNet)", format="png", columns=4, height=300, elem_id="coarse"
                    )
                    transparency = gr.Gallery(
                        label="Transparency map (UNet)", format="png", columns=4, height=300, elem_id="transparency"
                    )
                files = gr.File(label="Downloads (PNG)", file_count="multiple", interactive=False, elem_id="files")
        outputs = [alpha, preview, coarse, transparency, files]
        event = dict(fn=matter, inputs=[image, prompts], outputs=outputs, concurrency_limit=1, concurrency_id="pipe")
        submit.click(**event, api_name="matte")  # also `gradio_client.Client(url).predict(..., api_name="/matte")`
        prompts.submit(**event, api_visibility="private")
        if rows:
            gr.Examples(examples=[list(row) for row in rows], inputs=[image, prompts], label="Examples")
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def launch_demo(
    demo: "gradio.Blocks",
    host: str | None = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    allowed_paths: Sequence[str | Path] = (),
    **kwargs: Any,
):
    """Serve the demo; by default on this machine only (127.0.0.1). Other keyword arguments go to `Blocks.launch`.

    `host=None` and `port=None` leave the choice to Gradio: `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` if set
    (a Hugging Face Space sets them), else 127.0.0.1 and the first free port from 7860.

    `allowed_paths` adds folders Gradio may serve files from (the examples' folder when outside the working
    directory). Uploads above 100 MB are refused by the server itself.
    """
    extra_paths = [str(p) for p in allowed_paths]
    if EXAMPLES_FILE.is_file():
        extra_paths.append(str(EXAMPLES_FILE.parent))
    kwargs.setdefault("max_file_size", "100mb")
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=extra_paths,
        theme=_theme(),
        footer_links=[],
        **kwargs,
    )
