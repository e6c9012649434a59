# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Video matting: the synthetic moving-object clips, frame matting with the prompts encoded once, temporal
smoothing, the writers, the metrics and `diffusers-matte video` end to end (a 10-second clip in a slow test)."""

from fractions import Fraction

import numpy as np
import PIL.Image
import pytest
import torch

from diffusers_matte.data.synthetic_video import _POSITION_WORDS, _bounce, make_clip, write_clip
from diffusers_matte.pipelines.soft_grounding.image_processor import load_image

av = pytest.importorskip("av", reason='video matting needs PyAV: pip install "diffusers-matte[video]"')

from diffusers_matte import video  # noqa: E402


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """Six 48x48 frames at 12 frames/s, written losslessly, with the ground truth."""
    folder = tmp_path_factory.mktemp("clip")
    clip = make_clip(seed=1, seconds=0.5, fps=12, size=48)
    write_clip(clip, folder / "clip.mkv", folder / "clip_alpha.mkv")
    return clip, folder / "clip.mkv", folder / "clip_alpha.mkv"


# The synthetic clips ---------------------------------------------------------------------------------------------


def test_clip_is_deterministic_and_its_target_moves():
    clip = make_clip(seed=3, seconds=1.0, fps=10, size=64)
    again = make_clip(seed=3, seconds=1.0, fps=10, size=64)
    frames = list(clip.frames())
    assert len(frames) == 10 and clip.prompt == again.prompt
    assert not _POSITION_WORDS.search(clip.prompt)
    for t in (0, 7):
        assert np.array_equal(frames[t].image, again.frame(t).image)
        assert np.array_equal(frames[t].alpha, again.frame(t).alpha)
    first, last = frames[0].alpha, frames[-1].alpha
    assert frames[0].image.shape == (64, 64, 3) and first.dtype == np.float32
    assert 0 <= first.min() and first.max() <= 1 and first.max() > 0.3
    centre = [np.argwhere(a > 0.5).mean(axis=0) for a in (first, last)]
    assert np.linalg.norm(centre[0] - centre[1]) > 3  # pixels


def test_bounce_reflects_at_the_borders():
    assert _bounce(5.0, 0.0, 10.0) == 5.0
    assert _bounce(12.0, 0.0, 10.0) == 8.0
    assert _bounce(-3.0, 0.0, 10.0) == 3.0
    assert _bounce(23.0, 0.0, 10.0) == 3.0


def test_written_clip_reads_back_exactly(short_clip):
    clip, path, alpha_path = short_clip
    info = video.probe_video(path)
    assert (info.width, info.height, info.fps, info.has_audio) == (48, 48, Fraction(12), False)
    for frame, image, alpha in zip(clip.frames(), video.iter_frames(path), video.iter_frames(alpha_path, "gray")):
        assert np.array_equal(image, frame.image)
        assert np.array_equal(alpha[..., 0], np.clip(frame.alpha * 255 + 0.5, 0, 255).astype(np.uint8))
    assert sum(1 for _ in video.iter_frames(path)) == clip.num_frames


# Frame matting and smoothing -------------------------------------------------------------------------------------


def test_frame_matter_gives_the_pipelines_alphas_with_prompts_encoded_once(tiny_pipe, monkeypatch):
    calls = []
    encode = tiny_pipe.encode_prompt
    monkeypatch.setattr(tiny_pipe, "encode_prompt", lambda *a, **k: calls.append(a) or encode(*a, **k))
    prompts = ["the cat on the left", "a glass of water"]
    matter = video.FrameMatter(tiny_pipe, prompts)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    for frame in frames:
        alphas = matter(frame)
        expected = tiny_pipe(load_image(frame), prompts, output_type="pt").alpha
        assert len(alphas) == 2 and alphas[0].shape == (1, 1, 40, 56)
        torch.testing.assert_close(torch.cat(alphas), expected, atol=1e-5, rtol=0)  # batched prompts
    assert len(calls) == 1 + len(frames)  # once for the matter, once per direct pipeline call


def test_frame_matter_refuses_what_the_pipeline_refuses(tiny_pipe):
    with pytest.raises(ValueError, match="empty prompt"):
        video.FrameMatter(tiny_pipe, ["the cat", " "])
    with pytest.raises(ValueError, match="processing_resolution"):
        video.FrameMatter(tiny_pipe, ["the cat"], processing_resolution=-1)


def test_smoother_averages_still_pixels_and_follows_moving_ones():
    smoother = video.TemporalSmoother(strength=0.5, motion_threshold=0.05, window=1)
    frame = torch.zeros(1, 3, 4, 8)
    first = smoother(frame, [torch.full((1, 1, 4, 8), 0.2)])[0]
    assert torch.equal(first, torch.full((1, 1, 4, 8), 0.2))  # nothing to blend with yet
    moved = frame.clone()
    moved[..., 4:] = 1.0  # the right half changes: motion
    out = smoother(moved, [torch.full((1, 1, 4, 8), 0.6)])[0]
    torch.testing.assert_close(out[..., :4], torch.full((1, 1, 4, 4), 0.4))  # still: 0.5 * 0.2 + 0.5 * 0.6
    torch.testing.assert_close(out[..., 4:], torch.full((1, 1, 4, 4), 0.6))  # moving: the new alpha, no lag


def test_smoother_reduces_flicker_on_a_still_picture():
    generator = torch.Generator().manual_seed(0)
    frame = torch.rand(1, 3, 16, 16, generator=generator)
    smoother, raw, smooth = video.TemporalSmoother(0.6), [], []
    for _ in range(40):
        alpha = (0.5 + 0.1 * torch.randn(1, 1, 16, 16, generator=generator)).clamp(0, 1)
        raw.append(alpha)
        smooth.append(smoother(frame, [alpha])[0])
    flicker = [torch.stack([b - a for a, b in zip(s[10:], s[11:])]).std().item() for s in (raw, smooth)]
    assert flicker[1] < 0.6 * flicker[0]


def test_smoother_options_are_checked():
    for kwargs in ({"strength": 1.0}, {"strength": -0.1}, {"motion_threshold": 0}, {"window": 4}):
        with pytest.raises(ValueError):
            video.TemporalSmoother(**kwargs)


def test_matte_frames_streams_one_frame_at_a_time(tiny_pipe):
    pulled = []

    def frames():
        for k in range(5):
            pulled.append(k)
            yield np.full((20, 24, 3), 40 * k, np.uint8)

    stream = video.matte_frames(video.FrameMatter(tiny_pipe, ["the cat"]), frames(), video.TemporalSmoother())
    for done, (image, alphas) in enumerate(stream, start=1):
        assert len(pulled) == done  # the next frame is decoded only when the next result is asked for
        assert image.shape == (1, 3, 20, 24) and alphas[0].shape == (1, 1, 20, 24)


def test_writers_take_odd_sizes_and_the_alpha_video_is_lossless(tmp_path):
    alpha = (np.arange(33 * 47).reshape(33, 47) % 256).astype(np.uint8)
    with video.alpha_video_writer(tmp_path / "a.webm", 47, 33, 10) as writer:
        for _ in range(3):
            writer.write(alpha)
    with video.cutout_video_writer(tmp_path / "c.webm", 47, 33, 10) as writer:
        for _ in range(3):
            writer.write(np.dstack([alpha] * 4))
    frames = list(video.iter_frames(tmp_path / "a.webm", "gray"))
    assert len(frames) == 3 and all(np.array_equal(f[..., 0], alpha) for f in frames)
    cutouts = list(video.iter_frames(tmp_path / "c.webm", "rgba", decoder="libvpx-vp9"))
    assert len(cutouts) == 3 and cutouts[0].shape == (33, 47, 4)
    assert np.abs(cutouts[0][..., 3].astype(int) - alpha).mean() < 2


def test_metrics_score_error_and_flicker():
    metrics = video.VideoMetrics()
    gt = np.zeros((10, 10))
    for pred in (np.full((10, 10), 0.1), np.full((10, 10), 0.1), np.full((10, 10), 0.3)):
        metrics.update(pred, gt)
    summary = metrics.summary()
    assert summary["frames"] == 3
    assert summary["sad"] == pytest.approx((10 + 10 + 30) / 3 / 1000, abs=1e-6)  # DIM SAD, in thousands
    assert summary["dtssd"] == pytest.approx((0 + 20) / 2, abs=1e-4)  # a constant error does not flicker
    assert summary["dtssd_still"] == pytest.approx(summary["dtssd"])


# The command -----------------------------------------------------------------------------------------------------


def test_video_command_writes_alpha_and_cutout_videos(run_cli, tiny_model_dir, tiny_pipe, short_clip, tmp_path):
    clip, path, _ = short_clip
    code, err = run_cli(
        "video", path, "--prompt", "the cat", "--model", tiny_model_dir, "--output-dir", tmp_path, "--cutout"
    )
    assert code == 0, err
    assert "matted 6 frame(s) at 12 frames/s of video" in err and "frames/s of matting" in err
    alpha_path, cutout_path = tmp_path / "clip_the-cat_alpha.webm", tmp_path / "clip_the-cat_cutout.webm"
    assert video.probe_video(alpha_path).fps == Fraction(12)
    alphas = [a[..., 0] for a in video.iter_frames(alpha_path, "gray")]
    assert len(alphas) == clip.num_frames
    for frame, alpha in zip(clip.frames(), alphas):  # lossless: the pipeline's own 8-bit alphas
        expected = tiny_pipe(load_image(frame.image), "the cat", output_type="pil").alpha[0]
        assert np.abs(alpha.astype(int) - np.asarray(expected).astype(int)).max() <= 1
    cutouts = list(video.iter_frames(cutout_path, "rgba", decoder="libvpx-vp9"))
    assert len(cutouts) == clip.num_frames and cutouts[0].shape == (48, 48, 4)
    assert np.abs(cutouts[0][..., 3].astype(int) - alphas[0].astype(int)).mean() < 3  # VP9 alpha, lossy


def test_video_command_png_sequence_and_smoothing(run_cli, tiny_model_dir, short_clip, tmp_path):
    clip, path, _ = short_clip
    argv = ["video", path, "--prompt", "the cat", "--model", tiny_model_dir, "--output-dir", tmp_path, "--png"]
    code, err = run_cli(*argv, "--temporal-smoothing", "--no-progress")
    assert code == 0, err
    folder = tmp_path / "clip_the-cat_cutout"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{k:06d}.png" for k in range(clip.num_frames)]
    alphas = [a[..., 0] for a in video.iter_frames(tmp_path / "clip_the-cat_alpha.webm", "gray")]
    last = PIL.Image.open(folder / names[-1])
    assert last.mode == "RGBA" and np.array_equal(np.asarray(last)[..., 3], alphas[-1])
    # A second run is refused unless told to overwrite.
    code, err = run_cli(*argv)
    assert code == 2 and "already exist" in err and "--overwrite" in err
    code, err = run_cli(*argv, "--overwrite", "--no-progress")
    assert code == 0, err


def _write_video_with_audio(path, frames=4, fps=10):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for k in range(frames):
            image = np.full((32, 32, 3), 30 * k, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        samples = np.zeros((1, 16000 * frames // fps), np.float32)
        sound = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        sound.sample_rate = 16000
        for packet in audio.encode(sound):
            container.mux(packet)
        for s in (stream, audio):
            for packet in s.encode():
                container.mux(packet)


def test_video_command_notes_that_audio_is_dropped(run_cli, tiny_model_dir, tmp_path):
    path = tmp_path / "talk.mp4"
    _write_video_with_audio(path)
    out = tmp_path / "out"
    code, err = run_cli("video", path, "--prompt", "the cat", "--model", tiny_model_dir, "--output-dir", out)
    assert code == 0, err
    assert "note: the input's audio is not copied" in err
    with av.open(str(out / "talk_the-cat_alpha.webm")) as container:
        assert len(container.streams.video) == 1 and not container.streams.audio
    assert sum(1 for _ in video.iter_frames(out / "talk_the-cat_alpha.webm")) == 4


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["missing.mp4", "--prompt", "x"], "no such file"),
        (["{notes}", "--prompt", "x"], "cannot read"),
        (["{clip}", "--prompt", " "], "--prompt must not be empty"),
        (["{clip}", "--prompt", "x", "--temporal-smoothing", "1"], "--temporal-smoothing must be in [0, 1)"),
        (["{clip}", "--prompt", "a cat", "--prompt", "a-cat"], "same file name"),
    ],
)
def test_video_command_refuses_bad_input_in_one_line(run_cli, short_clip, tmp_path, argv, fragment):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    argv = [a.format(notes=notes, clip=short_clip[1]) for a in argv]
    code, err = run_cli("video", *argv, "--output-dir", tmp_path / "out")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_ten_second_clip_end_to_end_with_bounded_memory(tiny_pipe, tmp_path):
    clip = make_clip(seed=0, seconds=10.0, fps=24, size=256)
    write_clip(clip, tmp_path / "clip.mkv", tmp_path / "clip_alpha.mkv")
    ground_truth = video.iter_frames(tmp_path / "clip_alpha.mkv", "gray")
    metrics, memory = video.VideoMetrics(), {}

    def on_frame(index, alphas):
        metrics.update(alphas[0], next(ground_truth)[..., 0] / 255.0)
        if index in (24, 239):
            memory[index] = _rss_mib()

    result = video.matte_video(
        tiny_pipe,
        tmp_path / "clip.mkv",
        [clip.prompt],
        tmp_path / "out",
        cutout=True,
        temporal_smoothing=0.6,
        progress=False,
        on_frame=on_frame,
    )
    assert result.num_frames == metrics.summary()["frames"] == 240
    assert sum(1 for _ in video.iter_frames(result.outputs[0].alpha)) == 240
    assert sum(1 for _ in video.iter_frames(result.outputs[0].cutout)) == 240
    # Keeping the frames would add 240 x 256 x 256 x (3 + 4 + 1) floats, about 480 MiB.
    assert memory[239] - memory[24] < 50, memory
