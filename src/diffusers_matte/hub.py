# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Publishing pipelines: a checkpoint layout that carries its own code, model cards, `push_to_hub`.

`save_pretrained` records our classes by module path (`["diffusers_matte.models.unet_matte", ...]`), which only
loads where `diffusers_matte` is installed. `save_pretrained_with_code` adds the code, in the layout diffusers'
`trust_remote_code` loader reads:

    model_index.json              _class_name: ["pipeline_soft_grounding", "SoftGroundingMattingPipeline"]
                                  unet: ["unet_matte", "MatteUNet2DConditionModel"], ...
    pipeline_soft_grounding.py    the pipeline module, plus the same-folder modules it imports (image_processor.py)
    unet/unet_matte.py            each custom component's module, plus its same-folder imports
    unet/config.json, unet/diffusion_pytorch_model.safetensors, ...

so that `DiffusionPipeline.from_pretrained(folder_or_repo, trust_remote_code=True)` works without our package.
The copied modules may import installed libraries and same-folder modules only; anything else is refused.
"""

import ast
import inspect
import json
import os
import shutil
import string
import sys
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard, create_repo, file_exists, upload_folder

# Libraries diffusers loads components from without custom code.
_BUILTIN_LIBRARIES = ("diffusers", "transformers")
# Templates live in the repository's model_cards/ folder, which a built wheel carries as diffusers_matte/model_cards.
MODEL_CARD_DIR = Path(__file__).parent / "model_cards"
if not MODEL_CARD_DIR.is_dir():  # a source checkout (editable install)
    MODEL_CARD_DIR = Path(__file__).resolve().parents[2] / "model_cards"
DEFAULT_MODEL_CARD = "soft_grounding_matting.md"


def _module_file(cls: type) -> Path:
    module = sys.modules.get(cls.__module__)
    path = inspect.getsourcefile(module) if module is not None else None
    if path is None:
        raise ValueError(f"Cannot find the source file of {cls.__module__} (class {cls.__name__}).")
    return Path(path)


def _sibling_imports(path: Path) -> list[str]:
    """Names of the same-folder modules `path` imports (`from .x import y`, `from . import x`); refuses imports
    that would not resolve next to the copied file."""
    siblings = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                if "." in name:
                    raise ValueError(f"{path} imports .{name}: only flat same-folder modules can be exported.")
                siblings.append(name)
            continue
        if isinstance(node, ast.ImportFrom) and node.level > 1:
            raise ValueError(f"{path} imports from a parent package ({'.' * node.level}{node.module or ''}).")
        if isinstance(node, ast.ImportFrom):
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        if any(module.split(".")[0] == "diffusers_matte" for module in modules):
            raise ValueError(f"{path} imports {', '.join(modules)}: exported code must not need diffusers_matte.")
    return siblings


def copy_module_with_siblings(cls: type, destination: Path, copied: dict[str, Path]) -> str:
    """Copy the module defining `cls`, and the same-folder modules it needs, into `destination`.

    `copied` maps file names to their sources across one export: diffusers flattens every exported module into
    one folder when loading, so one name must not stand for two different files. Returns the module's name.
    """
    destination.mkdir(parents=True, exist_ok=True)
    root = _module_file(cls)
    pending = [root]
    while pending:
        path = pending.pop()
        if path.name in copied:
            if copied[path.name].resolve() != path.resolve():
                raise ValueError(f"Two exported modules are named {path.name}: {copied[path.name]} and {path}.")
            if (destination / path.name).exists():
                continue
        copied[path.name] = path
        shutil.copyfile(path, destination / path.name)
        pending.extend(path.parent / f"{name}.py" for name in _sibling_imports(path))
    return root.stem


def save_pretrained_with_code(pipeline, save_directory: str | os.PathLike, **save_kwargs) -> None:
    """`pipeline.save_pretrained(save_directory, **save_kwargs)`, then the code and a `model_index.json` for
    `DiffusionPipeline.from_pretrained(save_directory, trust_remote_code=True)` (layout in the module docstring).

    Works as well for a pipeline that was itself loaded with `trust_remote_code` (its classes then come from
    diffusers' module cache, and a plain `save_pretrained` would write unloadable module names).
    """
    save_directory = Path(save_directory)
    pipeline.save_pretrained(save_directory, **save_kwargs)
    index_path = save_directory / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    copied = {}
    pipeline_module = copy_module_with_siblings(type(pipeline), save_directory, copied)
    index["_class_name"] = [pipeline_module, type(pipeline).__name__]
    for name, component in pipeline.components.items():
        entry = index.get(name)
        if component is None or not isinstance(entry, list) or entry[0] is None:
            continue
        if entry[0].split(".")[0] in _BUILTIN_LIBRARIES:
            continue
        module = copy_module_with_siblings(type(component), save_directory / name, copied)
        index[name] = [module, type(component).__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _parameter_table(pipeline) -> str:
    rows = ["| component | class | parameters |", "|---|---|---|"]
    for name, component in pipeline.components.items():
        if component is None:
            continue
        count = sum(p.numel() for p in component.parameters()) if hasattr(component, "parameters") else None
        rows.append(f"| {name} | `{type(component).__name__}` | {f'{count / 1e6:.2f}M' if count else '-'} |")
    return "\n".join(rows)


def make_model_card(
    pipeline,
    repo_id: str,
    model_description: str = "",
    base_model: str | None = None,
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Fill a model card template (`model_cards/soft_grounding_matting.md` by default; `$name` placeholders)."""
    template_path = Path(template_path) if template_path else MODEL_CARD_DIR / DEFAULT_MODEL_CARD
    if not template_path.is_file():
        raise FileNotFoundError(f"Model card template not found: {template_path}; pass `template_path`.")
    values = {
        "repo_id": repo_id,
        "title": repo_id.split("/")[-1],
        "pipeline_class": type(pipeline).__name__,
        "model_description": model_description or "",
        "base_model_metadata": f"base_model: {base_model}\n" if base_model else "",
        "components_table": _parameter_table(pipeline),
        "processing_resolution": pipeline.config.get("default_processing_resolution", ""),
    }
    text = string.Template(template_path.read_text(encoding="utf-8")).substitute(values)
    return ModelCard(text)


def push_to_hub(
    pipeline,
    repo_id: str,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    create_pr: bool = False,
    safe_serialization: bool = True,
    variant: str | None = None,
    model_description: str = "",
    base_model: str | None = None,
    overwrite_model_card: bool = False,
) -> str:
    """Upload the pipeline with its code (`save_pretrained_with_code`) and a model card from the template.

    An existing `README.md` in the repository is kept unless `overwrite_model_card=True`. Returns the commit URL.
    """
    repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    keep_card = not overwrite_model_card and file_exists(repo_id, "README.md", token=token)
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained_with_code(pipeline, folder, safe_serialization=safe_serialization, variant=variant)
        if not keep_card:
            card = make_model_card(
                pipeline,
                repo_id,
                model_description=model_description,
                base_model=base_model,
            )
            card.save(os.path.join(folder, "README.md"))
        return upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            token=token,
            commit_message=commit_message or f"Upload {type(pipeline).__name__}",
            create_pr=create_pr,
        )
