# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The options every model-running command shares (`--device`, `--dtype`, `--trust-remote-code`,
`--allow-pickle`, `--vae`, `--fast`): each command shows them, passes them to `load_pipeline`, and refuses a
pickle-only model the same way."""

import argparse
import inspect
import shutil

import numpy as np
import PIL.Image
import pytest
import torch

from diffusers_matte import cli
from diffusers_matte.cli import common

MODEL_COMMANDS = ("predict", "evaluate", "demo", "video")
SHARED_OPTIONS = ("--device", "--dtype", "--trust-remote-code", "--allow-pickle", "--vae", "--fast")


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "cat.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    pytest.importorskip("av", reason='video matting needs PyAV: pip install "diffusers-matte[video]"')
    from diffusers_matte.data.synthetic_video import make_clip, write_clip

    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    write_clip(make_clip(seed=1, seconds=0.25, fps=4, size=24), path)  # the default layout fits no 16 px scene
    return path


@pytest.fixture(scope="module")
def pickled_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny pipeline folder with the UNet's weights as a pickle (`.bin`) file only."""
    import safetensors.torch

    path = tmp_path_factory.mktemp("pickled") / "model"
    shutil.copytree(tiny_model_dir, path)
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(safetensors.torch.load_file(weights), weights.with_suffix(".bin"))
    weights.unlink()
    return path


@pytest.fixture
def command_argv(monkeypatch, tmp_path, image_file, request):
    """`command_argv(command, model)` -> the arguments of a run of `command` on `model` that gets as far as loading
    the model (an evaluation set of no samples: the model loads before any is scored)."""

    def argv(command: str, model) -> list:
        out = ["--output-dir", tmp_path / "out"]
        if command == "predict":
            return ["predict", image_file, "--prompt", "the cat", "--model", model, *out]
        if command == "evaluate":
            monkeypatch.setattr(cli.evaluate, "load_protocol_dataset", lambda *args, **kwargs: [])
            return ["evaluate", "--model", model, "--protocol", "synthetic", "--no-progress", *out]
        if command == "demo":
            pytest.importorskip("gradio", reason='the demo needs Gradio: pip install "diffusers-matte[demo]"')
            return ["demo", "--model", model, "--no-examples"]
        return ["video", request.getfixturevalue("video_file"), "--prompt", "the cat", "--model", model, *out]

    return argv


class StopAfterLoading(Exception):
    """Raised where the command would start its work, once `load_pipeline` has been called."""


def capture_load_pipeline(monkeypatch, command: str, load: bool = False) -> list:
    """Replace `load_pipeline` in the command's module by one that records its arguments (all of them, by name,
    defaults filled in), runs the real one when `load`, then stops the command."""
    calls = []
    real = common.load_pipeline

    def recording(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        if load:
            real(*args, **kwargs)
        raise StopAfterLoading

    monkeypatch.setattr(getattr(cli, command), "load_pipeline", recording)
    return calls


def _subparser(command: str) -> argparse.ArgumentParser:
    (subparsers,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[command]


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_help_shows_the_shared_options(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for option in SHARED_OPTIONS:
        assert option in shown, (command, option)


@pytest.mark.parametrize("option", SHARED_OPTIONS)
def test_every_command_explains_a_shared_option_in_the_same_words(option):
    helps = {}
    for command in MODEL_COMMANDS:
        (action,) = [a for a in _subparser(command)._actions if option in a.option_strings]
        helps[command] = action.help.replace("; under accelerate launch, each process's own", "")
    assert len(set(helps.values())) == 1, helps


ALL_GIVEN = ["--trust-remote-code", "--allow-pickle", "--dtype", "bfloat16"]


@pytest.mark.parametrize(
    "command, extra, expected",
    [
        *[
            pytest.param(c, [], {"trust_remote_code": False, "allow_pickle": False, "dtype": torch.float32},
                         id=f"{c}-defaults")
            for c in MODEL_COMMANDS
        ],
        *[
            pytest.param(c, ALL_GIVEN, {"trust_remote_code": True, "allow_pickle": True, "dtype": torch.bfloat16},
                         id=f"{c}-given")
            for c in MODEL_COMMANDS
        ],
        pytest.param("evaluate", ["--trust_remote_code", "--allow_pickle"],
                     {"trust_remote_code": True, "allow_pickle": True}, id="evaluate-underscored"),
    ],
)  # fmt: skip
def test_the_options_reach_load_pipeline(run_cli, monkeypatch, command_argv, tiny_model_dir, command, extra, expected):
    calls = capture_load_pipeline(monkeypatch, command)
    with pytest.raises(StopAfterLoading):
        run_cli(*command_argv(command, tiny_model_dir), "--device", "cpu", *extra)
    (call,) = calls
    assert call["model"] == str(tiny_model_dir) and call["device"] == torch.device("cpu")
    assert {name: call[name] for name in expected} == expected


def test_a_pickle_only_model_is_refused_the_same_way_by_every_command(run_cli, command_argv, pickled_model_dir):
    errors = {}
    for command in MODEL_COMMANDS:
        code, err = run_cli(*command_argv(command, pickled_model_dir), "--device", "cpu")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (command, err)
        prefix = f"diffusers-matte {command}: error: "
        assert lines[0].startswith(prefix), lines[0]
        errors[command] = lines[0][len(prefix) :]
    assert errors["predict"] == (
        f"the model {str(pickled_model_dir)!r} has only pickle (.bin) weights for unet; loading them can run code "
        "from the files: pass --allow-pickle if you trust them, or convert them to .safetensors"
    )
    assert len(set(errors.values())) == 1, errors


def test_a_training_outputs_checkpoint_folders_are_not_taken_for_pickled_components(
    run_cli, monkeypatch, command_argv, tiny_model_dir, tmp_path
):
    # a stage script's output folder: the pipeline's components, plus accelerate's state in checkpoint-N/ (.bin)
    trained = tmp_path / "trained"
    shutil.copytree(tiny_model_dir, trained)
    (trained / "checkpoint-600").mkdir()
    torch.save({"step": 600}, trained / "checkpoint-600" / "optimizer.bin")
    calls = capture_load_pipeline(monkeypatch, "evaluate", load=True)
    with pytest.raises(StopAfterLoading):
        run_cli(*command_argv("evaluate", trained), "--device", "cpu")
    assert len(calls) == 1 and calls[0]["allow_pickle"] is False
    # a component of model_index.json is still checked
    shutil.rmtree(trained / "checkpoint-600")
    weights = trained / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    code, err = run_cli(*command_argv("evaluate", trained), "--device", "cpu")
    assert code == 2 and "only pickle (.bin) weights for unet" in err


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_allow_pickle_loads_a_pickle_only_model(run_cli, monkeypatch, command_argv, pickled_model_dir, command):
    calls = capture_load_pipeline(monkeypatch, command, load=True)
    with pytest.raises(StopAfterLoading):  # the real load_pipeline returned: the model loaded
        run_cli(*command_argv(command, pickled_model_dir), "--device", "cpu", "--allow-pickle")
    assert len(calls) == 1 and calls[0]["allow_pickle"] is True
