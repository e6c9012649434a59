# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Publishing: the remote-code export (loaded where diffusers_matte cannot be imported), Hub ids, model cards."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline

from diffusers_matte import hub
from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.testing import get_dummy_components

# Loads an exported folder in a fresh interpreter where `import diffusers_matte` fails, runs it, saves the alphas.
REMOTE_LOAD_SCRIPT = textwrap.dedent("""
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "diffusers_matte":
                raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)")

    sys.meta_path.insert(0, _Block())
    import json
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline

    folder, out_dir = sys.argv[1], sys.argv[2]
    for name, kwargs in (("custom", {"custom_pipeline": "pipeline_soft_grounding"}), ("index", {})):
        pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        modules = {k: type(c).__module__ for k, c in pipe.components.items() if c is not None}
        modules["pipeline"] = type(pipe).__module__
        image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
        np.save(f"{out_dir}/{name}.npy", pipe(image, "the cat on the left", processing_resolution=32).alpha)
        json.dump(modules, open(f"{out_dir}/{name}.json", "w"))
    assert not [m for m in sys.modules if m.split(".")[0] == "diffusers_matte"]
    """)


# Without the package: load an exported folder with remote code, `save_pretrained` it, load the copy, run both.
RESAVE_SCRIPT = REMOTE_LOAD_SCRIPT.split("\nfolder, out_dir")[0] + textwrap.dedent("""
    folder, again, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    pipe.save_pretrained(again)
    pipe = DiffusionPipeline.from_pretrained(again, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    np.save(f"{out_dir}/again.npy", pipe(image, "the cat on the left", processing_resolution=32).alpha)
    assert not [m for m in sys.modules if m.split(".")[0] == "diffusers_matte"]
    """)


def _pipe(**kwargs):
    pipe = SoftGroundingMattingPipeline(**get_dummy_components(**kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _alpha(pipe):
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    return pipe(image, "the cat on the left", processing_resolution=32).alpha


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pipe = _pipe(refiner=True)
    folder = tmp_path_factory.mktemp("exported")
    pipe.save_pretrained_with_code(folder)
    return pipe, folder


def test_export_layout(exported):
    _, folder = exported
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == [
        "pipeline_soft_grounding",
        "SoftGroundingMattingPipeline",
    ]
    assert index["unet"] == ["unet_matte", "MatteUNet2DConditionModel"]
    assert index["text_adapter"] == ["text_adapter", "TextAdapter"]
    assert index["matting_decoder"] == ["matting_decoder", "MattingDecoder"]
    assert index["refiner"] == ["sparse_refiner", "SparseMatteRefiner"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["default_processing_resolution"] == 512
    for path in (
        "pipeline_soft_grounding.py",
        "image_processor.py",
        "unet/unet_matte.py",
        "unet/heads.py",
    ):
        assert (folder / path).is_file(), path
    # No import statement of the package (the check diffusers' remote-code loader makes on each file).
    package_import = re.compile(r"^\s*(from|import)\s+diffusers_matte\b", re.MULTILINE)
    for path in folder.rglob("*.py"):
        assert not package_import.search(path.read_text()), path


def test_remote_code_loads_without_the_package(exported, tmp_path):
    pipe, folder = exported
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    script = tmp_path / "remote_load.py"
    script.write_text(REMOTE_LOAD_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = _alpha(pipe)
    for name in ("custom", "index"):
        modules = json.loads((tmp_path / f"{name}.json").read_text())
        for component in (
            "pipeline",
            "unet",
            "text_adapter",
            "matting_decoder",
            "refiner",
        ):
            assert modules[component].startswith("diffusers_modules."), (
                name,
                component,
                modules[component],
            )
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=1e-6)


def test_re_export_of_a_remote_code_pipeline(exported, tmp_path):
    # Round-trip problem: a pipeline loaded with trust_remote_code has classes from diffusers' module cache; a plain
    # save_pretrained would record those module names. The export writes loadable names and the code again.
    pipe, folder = exported
    remote = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(remote.unet).__module__.startswith("diffusers_modules.")
    hub.save_pretrained_with_code(remote, tmp_path / "again")
    index = json.loads((tmp_path / "again" / "model_index.json").read_text())
    assert index["unet"] == ["unet_matte", "MatteUNet2DConditionModel"]
    assert index["_class_name"] == [
        "pipeline_soft_grounding",
        "SoftGroundingMattingPipeline",
    ]
    again = DiffusionPipeline.from_pretrained(tmp_path / "again", trust_remote_code=True)
    again.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(_alpha(again), _alpha(pipe), atol=1e-6)


def _module_from_files(tmp_path, monkeypatch, files: dict, name="exportme"):
    package = tmp_path / "pkg"
    package.mkdir(exist_ok=True)
    for file, text in files.items():
        (package / file).write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, package / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    module.Thing = type("Thing", (), {"__module__": name})
    return module.Thing


def test_copies_same_folder_imports_and_refuses_others(tmp_path, monkeypatch):
    thing = _module_from_files(
        tmp_path,
        monkeypatch,
        {
            "exportme.py": "from .helper import x\n",
            "helper.py": "from . import leaf\nimport torch\n",
            "leaf.py": "",
        },
    )
    assert hub.copy_module_with_siblings(thing, tmp_path / "out", {}) == "exportme"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "exportme.py",
        "helper.py",
        "leaf.py",
    ]
    for source, message in (
        ("from ..parent import x\n", "parent package"),
        ("import diffusers_matte.hub\n", "must not need diffusers_matte"),
        ("from .sub.mod import x\n", "flat same-folder"),
    ):
        thing = _module_from_files(tmp_path, monkeypatch, {"exportme.py": source})
        with pytest.raises(ValueError, match=message):
            hub.copy_module_with_siblings(thing, tmp_path / "refused", {})
    thing = _module_from_files(tmp_path, monkeypatch, {"exportme.py": ""})
    with pytest.raises(ValueError, match="Two exported modules are named exportme.py"):
        hub.copy_module_with_siblings(thing, tmp_path / "clash", {"exportme.py": tmp_path / "elsewhere.py"})


def _fake_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """The on-disk layout huggingface_hub leaves after a download: snapshots/<sha>/..., refs/main."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)


def test_from_pretrained_hub_id_is_snapshotted_first(tmp_path, monkeypatch):
    pipe = _pipe()
    pipe.save_pretrained(tmp_path / "saved")
    _fake_hub_cache(tmp_path / "cache", "me/matte", tmp_path / "saved")
    kwargs = {"cache_dir": tmp_path / "cache", "local_files_only": True}
    calls = []
    real_snapshot_download = huggingface_hub.snapshot_download

    def spy(repo_id, **hub_kwargs):
        calls.append((repo_id, hub_kwargs))
        return real_snapshot_download(repo_id, **hub_kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    # diffusers' own Hub download check would refuse the components that live outside diffusers: the pipeline
    # downloads the snapshot itself and loads the local folder.
    loaded = SoftGroundingMattingPipeline.from_pretrained("me/matte", revision="main", **kwargs)
    assert calls == [
        (
            "me/matte",
            {
                "revision": "main",
                "local_files_only": True,
                "cache_dir": tmp_path / "cache",
            },
        )
    ]
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(_alpha(loaded), _alpha(pipe), atol=1e-6)


def test_model_card_from_template(exported):
    pipe, _ = exported
    card = hub.make_model_card(pipe, "me/matte", model_description="A tiny test model.", base_model="me/base")
    assert card.data.license == "apache-2.0"
    assert card.data.library_name == "diffusers"
    assert card.data.base_model == "me/base"
    assert "diffusers-matte" in card.data.tags
    text = str(card)
    assert "A tiny test model." in text and 'from_pretrained("me/matte"' in text
    assert "| unet | `MatteUNet2DConditionModel` |" in text
    assert "${" not in text and "$repo_id" not in text
    assert "base_model" not in str(hub.make_model_card(pipe, "me/matte").data.to_dict())
    with pytest.raises(FileNotFoundError, match="template"):
        hub.make_model_card(pipe, "me/matte", template_path="/nonexistent.md")


def test_push_to_hub_uploads_code_weights_and_card(exported, tmp_path, monkeypatch):
    pipe, _ = exported
    uploads = []

    def fake_upload(repo_id, folder_path, **kwargs):
        target = tmp_path / f"upload{len(uploads)}"
        shutil.copytree(folder_path, target)
        uploads.append((repo_id, target, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/1"

    readme_exists = {"value": False}
    monkeypatch.setattr(hub, "create_repo", lambda repo_id, **kwargs: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(hub, "file_exists", lambda repo_id, filename, **kwargs: readme_exists["value"])
    monkeypatch.setattr(hub, "upload_folder", fake_upload)

    assert pipe.push_to_hub("me/matte", commit_message="first").endswith("/commit/1")
    repo_id, folder, kwargs = uploads[0]
    assert repo_id == "me/matte" and kwargs["commit_message"] == "first"
    assert (folder / "unet" / "unet_matte.py").is_file() and (folder / "pipeline_soft_grounding.py").is_file()
    assert "license: apache-2.0" in (folder / "README.md").read_text()
    readme_exists["value"] = True  # an existing card is kept unless asked
    pipe.push_to_hub("me/matte")
    assert not (uploads[1][1] / "README.md").exists()
    pipe.push_to_hub("me/matte", overwrite_model_card=True)
    assert (uploads[2][1] / "README.md").exists()


def _offline_env(tmp_path):
    return {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }


def test_our_from_pretrained_loads_the_exported_folder(exported):
    pipe, folder = exported
    loaded = SoftGroundingMattingPipeline.from_pretrained(folder)  # today: "contains custom code"
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is SoftGroundingMattingPipeline
    assert type(loaded.unet).__module__ == "diffusers_matte.models.unet_matte"
    np.testing.assert_allclose(_alpha(loaded), _alpha(pipe), atol=1e-6)
    index = json.loads((folder / "model_index.json").read_text())
    assert hub.with_installed_classes(index)["refiner"] == [
        "diffusers_matte.models.sparse_refiner",
        "SparseMatteRefiner",
    ]
    assert hub.with_installed_classes(index)["vae"] == ["diffusers", "AutoencoderKL"]


def _cli(capsys, *argv):
    from diffusers_matte import cli

    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _photo(tmp_path):
    path = tmp_path / "photo.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(path)
    return path


def test_predict_loads_exported_folders_and_asks_before_running_foreign_code(exported, tmp_path, capsys):
    _, folder = exported
    photo = _photo(tmp_path)
    base = ["predict", photo, "--prompt", "the cat", "--processing-resolution", 32]
    code, err = _cli(capsys, *base, "--model", folder, "--output-dir", tmp_path / "ours")
    assert code == 0, err
    # a fork: the same weights with code whose module is not ours
    fork = tmp_path / "fork"
    shutil.copytree(folder, fork)
    (fork / "unet" / "unet_matte.py").rename(fork / "unet" / "forked_unet.py")
    index = json.loads((fork / "model_index.json").read_text())
    index["unet"] = ["forked_unet", "MatteUNet2DConditionModel"]
    (fork / "model_index.json").write_text(json.dumps(index))
    code, err = _cli(capsys, *base, "--model", fork, "--output-dir", tmp_path / "fork_out")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "not diffusers-matte's own" in err and "--trust-remote-code" in err
    code, err = _cli(capsys, *base, "--model", fork, "--output-dir", tmp_path / "fork_out", "--trust-remote-code")
    assert code == 0, err
    ours, forked = (np.asarray(PIL.Image.open(tmp_path / d / "photo_the-cat_alpha.png")) for d in ("ours", "fork_out"))
    np.testing.assert_array_equal(ours, forked)


def test_predict_refuses_pickle_only_weights_unless_allowed(tmp_path, capsys):
    pipe = _pipe()
    pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    capsys.readouterr()
    assert not list((tmp_path / "pickled" / "unet").glob("*.safetensors"))  # transformers saves safetensors anyway
    photo = _photo(tmp_path)
    base = ["predict", photo, "--prompt", "a", "--model", tmp_path / "pickled", "--output-dir", tmp_path / "out"]
    base += ["--processing-resolution", 32]
    code, err = _cli(capsys, *base)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "only pickle (.bin) weights for matting_decoder, text_adapter, unet, vae" in err and "--allow-pickle" in err
    code, err = _cli(capsys, *base, "--allow-pickle")
    assert code == 0, err
    SoftGroundingMattingPipeline.from_pretrained(tmp_path / "pickled")  # the Python API keeps diffusers' behaviour


def test_a_remote_code_pipeline_saves_a_folder_that_loads_again(exported, tmp_path):
    pipe, folder = exported
    script = tmp_path / "resave.py"
    script.write_text(RESAVE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "again"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=_offline_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "again" / "unet" / "unet_matte.py").is_file()
    np.testing.assert_allclose(np.load(tmp_path / "again.npy"), _alpha(pipe), atol=1e-6)
