# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Writing a pipeline's code next to its weights, in the layout diffusers' `trust_remote_code` loader reads (see
`diffusers_matte.hub`). It imports the standard library only: it is exported with the pipeline (the pipeline
module imports it), so that a pipeline loaded as remote code, without diffusers-matte, saves into a folder that
loads again.
"""

import ast
import inspect
import json
import os
import shutil
import sys
from pathlib import Path

# Libraries diffusers loads components from without custom code.
BUILTIN_LIBRARIES = ("diffusers", "transformers")
# The package whose imports exported code must not need.
_PACKAGE = "diffusers_matte"


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
        if any(module.split(".")[0] == _PACKAGE for module in modules):
            raise ValueError(f"{path} imports {', '.join(modules)}: exported code must not need {_PACKAGE}.")
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


def add_code_to_saved_pipeline(pipeline, save_directory: str | os.PathLike) -> None:
    """After `pipeline.save_pretrained(save_directory)`: copy the code of the pipeline and of its custom
    components into the folder and rewrite its `model_index.json` to name them by file (`["unet_matte",
    "MatteUNet2DConditionModel"]`), the layout of `DiffusionPipeline.from_pretrained(folder,
    trust_remote_code=True)`. Works for classes imported from a package and for classes loaded as remote code
    (from diffusers' module cache)."""
    save_directory = Path(save_directory)
    index_path = save_directory / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    copied: dict[str, Path] = {}
    pipeline_module = copy_module_with_siblings(type(pipeline), save_directory, copied)
    index["_class_name"] = [pipeline_module, type(pipeline).__name__]
    for name, component in pipeline.components.items():
        entry = index.get(name)
        if component is None or not isinstance(entry, list) or entry[0] is None:
            continue
        if entry[0].split(".")[0] in BUILTIN_LIBRARIES:
            continue
        module = copy_module_with_siblings(type(component), save_directory / name, copied)
        index[name] = [module, type(component).__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
