"""Shared pytest configuration: offline, deterministic, and slow experiments kept out of the default run; the tiny
pipeline and the command runner that several test modules use."""

import os

import pytest
import torch

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny models gain nothing from a second thread, and on a shared machine an idle-spinning one costs a lot.
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run tests marked @pytest.mark.slow",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long experiment, run with --run-slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow experiment: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="module")
def tiny_pipe():
    """The tiny pipeline of `diffusers_matte.testing` (random weights), one per test module; a small default
    processing resolution keeps it fast."""
    from diffusers_matte.pipelines import SoftGroundingMattingPipeline
    from diffusers_matte.testing import get_dummy_components

    pipe = SoftGroundingMattingPipeline(**get_dummy_components(), default_processing_resolution=32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_pipe):
    """`tiny_pipe` written by `save_pretrained` to a temporary folder: what `--model` takes."""
    path = tmp_path_factory.mktemp("model")
    tiny_pipe.save_pretrained(path)
    return path


@pytest.fixture
def run_cli(capsys):
    """Runs `diffusers-matte` in-process: `run_cli("predict", path, "--prompt", "a")` -> (exit code, stderr).

    Arguments are turned into strings; argparse's own errors leave through SystemExit, whose code is returned."""
    from diffusers_matte import cli

    def run(*argv):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code
        return code, capsys.readouterr().err

    return run
