# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Video matting with `SoftGroundingMattingPipeline`: frames streamed through the pipeline, prompts encoded once.

    from diffusers_matte.video import matte_video

    matte_video(pipe, "clip.mp4", ["the dog"], "out/", cutout=True, temporal_smoothing=0.6)

Frames are decoded, matted and encoded one at a time (PyAV, `pip install "diffusers-matte[video]"`), so memory does
not grow with the video's length. Each prompt gives a grayscale alpha video (WebM, VP9 lossless: the 8-bit alphas
come back exactly) and, on request, an RGBA cut-out (WebM, VP9 with an alpha channel, or a PNG sequence). The
outputs keep the input's frame rate; audio is not copied. `TemporalSmoother` reduces flicker where the picture is
still and leaves moving parts alone, so that fast motion does not lag. `VideoMetrics` scores an alpha sequence
against the ground truth: per-frame SAD, MSE and the temporal coherence error dtSSD.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from .metrics import mse, sad
from .pipelines.soft_grounding.image_processor import alpha_to_pil, estimate_foreground, load_image

if TYPE_CHECKING:
    from .pipelines import SoftGroundingMattingPipeline

DEFAULT_SMOOTHING = 0.6
# Encoder settings. The alpha: VP9 lossless on planar RGB (gray copied to G, B and R), exact after decoding. The
# cut-out: VP9 with alpha (yuva420p) at constant quality; libvpx's alternate reference frames do not carry alpha.
ALPHA_VIDEO_OPTIONS = {"lossless": "1", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
CUTOUT_VIDEO_OPTIONS = {"crf": "18", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1", "auto-alt-ref": "0"}


def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError('video matting needs PyAV: pip install "diffusers-matte[video]"') from None
    return av


# Reading ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` reads from a file's header.

    Args:
        width, height: frame size in pixels.
        fps: the frame rate (average rate of the stream, or a guess from its timing when the container has none).
        num_frames: frame count from the header, None when the container does not say.
        has_audio: whether the file also has an audio stream (the outputs will not).
        codec: the video codec's name.
    """

    width: int
    height: int
    fps: Fraction
    num_frames: int | None
    has_audio: bool
    codec: str


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video file's header.

    Raises:
        ValueError: the file cannot be opened as a video, or has no video stream.
    """
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{str(path)!r} has no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not fps:
                raise ValueError(f"{str(path)!r} does not tell its frame rate")
            return VideoInfo(
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=Fraction(fps),
                num_frames=stream.frames or None,
                has_audio=bool(container.streams.audio),
                codec=stream.codec_context.name,
            )
    except av.FFmpegError as error:
        raise ValueError(f"cannot read {str(path)!r} as a video: {error}") from None


def iter_frames(path: str | Path, format: str = "rgb24", decoder: str | None = None) -> Iterator[np.ndarray]:
    """Decode a video's frames one at a time, as `(H, W, C)` uint8 arrays ("rgb24": RGB, "rgba", "gray").

    `decoder` names a decoder other than FFmpeg's default for the stream, e.g. "libvpx-vp9", the one that reads
    the alpha channel of a VP9 WebM (FFmpeg's own VP9 decoder drops it).
    """
    av = _import_av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if decoder is None:
            frames = container.decode(stream)
        else:
            context = av.CodecContext.create(decoder, "r")
            frames = (frame for packet in container.demux(stream) for frame in context.decode(packet))
        for frame in frames:
            array = frame.to_ndarray(format=format)
            yield array[..., None] if array.ndim == 2 else array


# Writing ---------------------------------------------------------------------------------------------------------


class VideoWriter:
    """Encode frames one at a time into a video file with PyAV (a context manager; `close` flushes the encoder).

    Args:
        path: the output file; its extension chooses the container (.webm, .mkv, .mp4, ...).
        width, height, fps: frame size and rate (frames get consecutive timestamps at this rate).
        codec, pix_fmt, options: the encoder, the pixel format it stores, its options.
        input_format: the layout of the arrays given to `write` ("rgb24", "rgba", "gray", ...).
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: Fraction | int,
        codec: str,
        pix_fmt: str,
        input_format: str,
        options: dict | None = None,
    ):
        av = _import_av()
        self.path = Path(path)
        self.input_format = input_format
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream(codec, rate=Fraction(fps))
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
        self._stream.options = dict(options or {})
        self._time_base = 1 / Fraction(fps)  # frame i is shown at i / fps
        self._av = av
        self.num_frames = 0

    def write(self, array: np.ndarray) -> None:
        """Encode one `(H, W[, C])` uint8 frame laid out as `input_format`."""
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=self.input_format)
        frame.pts = self.num_frames
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def alpha_video_writer(path: str | Path, width: int, height: int, fps: Fraction | int) -> VideoWriter:
    """A grayscale alpha video: WebM, VP9 lossless (the written 8-bit alphas decode exactly)."""
    return VideoWriter(path, width, height, fps, "libvpx-vp9", "gbrp", "gray", ALPHA_VIDEO_OPTIONS)


def cutout_video_writer(path: str | Path, width: int, height: int, fps: Fraction | int) -> VideoWriter:
    """An RGBA cut-out video: WebM, VP9 with an alpha channel (browsers and `ffmpeg -c:v libvpx-vp9` show it)."""
    return VideoWriter(path, width, height, fps, "libvpx-vp9", "yuva420p", "rgba", CUTOUT_VIDEO_OPTIONS)


class PNGSequenceWriter:
    """RGBA frames as `frame_000000.png`, `frame_000001.png`, ... in a folder (created; frames of an earlier
    sequence in it are deleted first, other files are left alone)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder)
        self.path.mkdir(parents=True, exist_ok=True)
        for old in self.path.glob("frame_[0-9][0-9][0-9][0-9][0-9][0-9].png"):
            old.unlink()
        self.num_frames = 0

    def write(self, array: np.ndarray) -> None:
        PIL.Image.fromarray(np.ascontiguousarray(array)).save(self.path / f"frame_{self.num_frames:06d}.png")
        self.num_frames += 1

    def close(self) -> None:
        pass

    def __enter__(self) -> "PNGSequenceWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Matting ---------------------------------------------------------------------------------------------------------


class FrameMatter:
    """Mattes single frames for a fixed list of prompts, the prompts encoded once (at construction).

    Per frame: one VAE encoding, then the UNet step and the matting decoder for all prompts together, then the
    pipeline's own post-processing (and refiner, if it has one). The alphas are those of `pipe(frame, prompts)`.

    Args:
        pipe: the loaded pipeline.
        prompts: what to matte; one alpha per prompt and frame.
        processing_resolution: as for the pipeline (`None`: its default).
    """

    def __init__(
        self,
        pipe: "SoftGroundingMattingPipeline",
        prompts: Sequence[str],
        processing_resolution: int | None = None,
    ):
        pipe.prompts_per_image(list(prompts), 1)  # the pipeline's own prompt checks
        self.pipe = pipe
        self.prompts = list(prompts)
        self.processing_resolution = (
            pipe.config.default_processing_resolution if processing_resolution is None else processing_resolution
        )
        pipe.check_inputs(self.processing_resolution, "bilinear", "bilinear", 1, "pt")
        with torch.no_grad():
            self.text_features = pipe.encode_prompt(self.prompts)

    @torch.no_grad()
    def __call__(self, frame: np.ndarray | torch.Tensor | PIL.Image.Image) -> list[torch.Tensor]:
        """One frame (any input the pipeline takes) -> one `(1, 1, H, W)` float alpha in [0, 1] per prompt (CPU)."""
        alphas = self.pipe(
            load_image(frame),
            prompt_embeds=self.text_features,
            processing_resolution=self.processing_resolution,
            batch_size=len(self.prompts),
            output_type="pt",
        ).alpha
        return [alpha[None] for alpha in alphas]


class TemporalSmoother:
    """Motion-gated temporal smoothing of a stream of alphas: less flicker, no lag on motion.

    Each new alpha is blended with the previous smoothed one, `a_t = w a_{t-1} + (1 - w) alpha_t`, per pixel, with
    `w = strength * max(0, 1 - motion / motion_threshold)`, where `motion` is the mean absolute colour change of
    the frame since the previous one, box-filtered over `window` pixels. Where the picture is still, the alpha is
    averaged over recent frames (with `strength` 0.6 its frame-to-frame noise falls to half); where anything moves,
    `w` is 0 and the alpha is the new prediction, so moving edges do not trail behind.

    Args:
        strength: the blending weight of the past on still pixels, in [0, 1) (0: no smoothing).
        motion_threshold: colour change (image values in [0, 1]) from which a pixel counts as moving.
        window: side of the box filter on the motion map, in pixels (odd), so that sensor noise is not motion.
    """

    def __init__(self, strength: float = DEFAULT_SMOOTHING, motion_threshold: float = 0.05, window: int = 5):
        if not 0 <= strength < 1:
            raise ValueError(f"`strength` must be in [0, 1), got {strength}.")
        if motion_threshold <= 0:
            raise ValueError(f"`motion_threshold` must be positive, got {motion_threshold}.")
        if window < 1 or window % 2 == 0:
            raise ValueError(f"`window` must be a positive odd number, got {window}.")
        self.strength = strength
        self.motion_threshold = motion_threshold
        self.window = window
        self.reset()

    def reset(self) -> None:
        """Forget the past (a new shot or a new video)."""
        self._frame: torch.Tensor | None = None
        self._alphas: list[torch.Tensor] | None = None

    def weight(self, frame: torch.Tensor) -> torch.Tensor:
        """The per-pixel weight `w` of the past for this frame `(1, 3, H, W)` in [0, 1] (0 for the first frame)."""
        if self._frame is None or self._frame.shape != frame.shape:
            return torch.zeros_like(frame[:, :1])
        motion = (frame - self._frame).abs().mean(dim=1, keepdim=True)
        if self.window > 1:
            motion = F.avg_pool2d(motion, self.window, stride=1, padding=self.window // 2, count_include_pad=False)
        return self.strength * (1.0 - motion / self.motion_threshold).clamp(min=0.0)

    def __call__(self, frame: torch.Tensor, alphas: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Smooth this frame's alphas (one `(1, 1, H, W)` per prompt) given the frame `(1, 3, H, W)` in [0, 1]."""
        frame = frame.float()
        alphas = [a.float() for a in alphas]
        if self.strength > 0 and self._alphas is not None and len(self._alphas) == len(alphas):
            w = self.weight(frame)
            alphas = [w * past + (1.0 - w) * new for past, new in zip(self._alphas, alphas)]
        self._frame, self._alphas = frame, alphas
        return alphas


def matte_frames(
    matter: FrameMatter,
    frames: Iterable[np.ndarray],
    smoother: TemporalSmoother | None = None,
) -> Iterator[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Lazily matte a stream of `(H, W, 3)` uint8 frames: yields `(image (1, 3, H, W) in [0, 1], alphas)` per frame,
    pulling the next frame only when asked for the next result (nothing is buffered)."""
    for frame in frames:
        image = load_image(frame)
        alphas = matter(image)
        if smoother is not None:
            alphas = smoother(image, alphas)
        yield image, alphas


def to_uint8(alpha: torch.Tensor) -> np.ndarray:
    """`(1, 1, H, W)` alpha in [0, 1] -> `(H, W)` uint8, rounded as the PNG outputs are."""
    return np.asarray(alpha_to_pil(alpha))


def rgba_cutout(image: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """`(H, W, 4)` uint8 cut-out: the estimated foreground colours with the alpha as alpha (as `cutout`)."""
    foreground, _ = estimate_foreground(image, alpha)
    rgba = torch.cat([foreground, alpha.float()], dim=1)[0].permute(1, 2, 0).cpu().numpy()
    return np.round(rgba * 255).astype(np.uint8)


# The whole video ---------------------------------------------------------------------------------------------------


@dataclass
class VideoOutputs:
    """The files of one prompt: `alpha` (a WebM) and, with a cut-out, `cutout` (a WebM or a PNG folder)."""

    prompt: str
    alpha: Path
    cutout: Path | None = None


def video_outputs(
    input_path: str | Path,
    prompts: Sequence[str],
    output_dir: str | Path,
    cutout: bool = False,
    png: bool = False,
) -> list[VideoOutputs]:
    """`<dir>/<stem>_<prompt>_alpha.webm` and `<dir>/<stem>_<prompt>_cutout.webm` (or `_cutout/` with `png`).

    Raises:
        ValueError: two prompts give the same file name.
    """
    from .cli.predict import slugify

    stem, output_dir = Path(input_path).stem, Path(output_dir)
    slugs = [slugify(p) for p in prompts]
    if len(set(slugs)) < len(slugs):
        raise ValueError(f"two prompts give the same file name ({', '.join(slugs)}); make them differ in letters")
    outputs = []
    for prompt, slug in zip(prompts, slugs):
        base = output_dir / f"{stem}_{slug}"
        cut = (Path(f"{base}_cutout") if png else Path(f"{base}_cutout.webm")) if cutout else None
        outputs.append(VideoOutputs(prompt, Path(f"{base}_alpha.webm"), cut))
    return outputs


@dataclass
class VideoMattingResult:
    """What `matte_video` did: the files per prompt, the frames matted, the wall time and the input's properties."""

    outputs: list[VideoOutputs]
    num_frames: int
    seconds: float
    info: VideoInfo
    notes: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else float("inf")


def matte_video(
    pipe: "SoftGroundingMattingPipeline",
    input_path: str | Path,
    prompts: Sequence[str],
    output_dir: str | Path,
    *,
    cutout: bool = False,
    png: bool = False,
    temporal_smoothing: float | TemporalSmoother = 0.0,
    processing_resolution: int | None = None,
    progress: bool = True,
    on_frame: Callable[[int, list[torch.Tensor]], None] | None = None,
) -> VideoMattingResult:
    """Matte every frame of a video for each prompt and write the outputs of `video_outputs`, streaming.

    Args:
        pipe: the loaded pipeline.
        input_path: any video FFmpeg reads.
        prompts: what to matte (each encoded once); one set of outputs per prompt.
        output_dir: created if needed; existing outputs are replaced (the command refuses them first).
        cutout: also write the RGBA cut-out, a VP9 WebM with alpha or, with `png`, a PNG sequence.
        temporal_smoothing: `TemporalSmoother` strength (0: off), or a smoother of one's own.
        processing_resolution: as for the pipeline.
        progress: show a progress bar (frames and frames/s) on stderr.
        on_frame: called after each frame with its index and its (smoothed) alphas, e.g. to score them.

    The outputs have the input's size and frame rate and no audio (noted in `notes` when the input has some).
    """
    from tqdm.auto import tqdm

    info = probe_video(input_path)
    notes = []
    if info.has_audio:
        notes.append("the input's audio is not copied: the outputs are video only")
    outputs = video_outputs(input_path, prompts, output_dir, cutout, png)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    matter = FrameMatter(pipe, prompts, processing_resolution)
    if isinstance(temporal_smoothing, TemporalSmoother):
        smoother = temporal_smoothing
        smoother.reset()
    else:
        smoother = TemporalSmoother(temporal_smoothing) if temporal_smoothing > 0 else None
    size = (info.width, info.height, info.fps)
    alpha_writers, cutout_writers = [], []  # one per prompt each (the cut-outs only with `cutout`)
    try:
        for out in outputs:
            alpha_writers.append(alpha_video_writer(out.alpha, *size))
            if out.cutout is not None:
                cutout_writers.append(PNGSequenceWriter(out.cutout) if png else cutout_video_writer(out.cutout, *size))
        start, count = time.perf_counter(), 0
        bar = tqdm(total=info.num_frames, unit="frame", desc="matting", disable=not progress, file=sys.stderr)
        with bar:
            for image, alphas in matte_frames(matter, iter_frames(input_path), smoother):
                for alpha, writer in zip(alphas, alpha_writers):
                    writer.write(to_uint8(alpha))
                for alpha, writer in zip(alphas, cutout_writers):
                    writer.write(rgba_cutout(image, alpha))
                if on_frame is not None:
                    on_frame(count, alphas)
                count += 1
                bar.update(1)
        seconds = time.perf_counter() - start
    finally:
        for writer in alpha_writers + cutout_writers:
            writer.close()
    return VideoMattingResult(outputs, count, seconds, info, notes)


# Scores ------------------------------------------------------------------------------------------------------------


class VideoMetrics:
    """Accumulates per-frame SAD and MSE (`diffusers_matte.metrics`, DIM conventions: SAD in thousands) and the
    temporal coherence error dtSSD of an alpha sequence against its ground truth, one frame at a time.

    dtSSD (Erofeev et al., "Perceptually motivated benchmark for video matting", BMVC 2015) compares the change of
    the prediction between consecutive frames with the change of the ground truth:
    `dtSSD_t = sqrt(mean_p((a_t - a_{t-1}) - (g_t - g_{t-1}))^2)`, reported x100 as in the video-matting tables,
    averaged over the frame pairs. It is 0 for a prediction whose errors do not change in time, whatever their size,
    and grows with flicker. `dtssd_still` is the same over the pixels whose ground truth did not change (by less
    than half an 8-bit step), where any change of the prediction is flicker.
    """

    def __init__(self):
        self.sad: list[float] = []
        self.mse: list[float] = []
        self.dtssd: list[float] = []
        self.dtssd_still: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """Add one frame: `pred` and `gt` are `(H, W)` float alphas in [0, 1] (or `(1, 1, H, W)` tensors)."""
        pred = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred, np.float64).squeeze()
        gt = np.asarray(gt.detach().cpu() if isinstance(gt, torch.Tensor) else gt, np.float64).squeeze()
        self.sad.append(sad(pred, gt))
        self.mse.append(mse(pred, gt))
        if self._previous is not None:
            gt_change = gt - self._previous[1]
            change = (pred - self._previous[0]) - gt_change
            self.dtssd.append(float(np.sqrt(np.mean(change**2))) * 100.0)
            still = np.abs(gt_change) < 0.5 / 255
            if still.any():
                self.dtssd_still.append(float(np.sqrt(np.mean(change[still] ** 2))) * 100.0)
        self._previous = (pred, gt)

    def summary(self) -> dict:
        """Means over the frames (dtSSD over frame pairs) and the frame count."""
        return {
            "frames": len(self.sad),
            "sad": float(np.mean(self.sad)) if self.sad else float("nan"),
            "mse": float(np.mean(self.mse)) if self.mse else float("nan"),
            "dtssd": float(np.mean(self.dtssd)) if self.dtssd else float("nan"),
            "dtssd_still": float(np.mean(self.dtssd_still)) if self.dtssd_still else float("nan"),
        }
