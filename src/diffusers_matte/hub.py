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

import importlib
import importlib.util
import os
import string
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard, create_repo, file_exists, upload_folder

from .pipelines.soft_grounding.remote_code import BUILTIN_LIBRARIES as _BUILTIN_LIBRARIES
from .pipelines.soft_grounding.remote_code import add_code_to_saved_pipeline, copy_module_with_siblings

__all__ = [
    "add_code_to_saved_pipeline",
    "copy_module_with_siblings",
    "make_model_card",
    "push_to_hub",
    "save_pretrained_with_code",
    "with_installed_classes",
]

# Where the modules an export copies come from (models and the pipeline's folder).
_EXPORTED_FROM = ("diffusers_matte.models", "diffusers_matte.pipelines.soft_grounding")
# Templates live in the repository's model_cards/ folder, which a built wheel carries as diffusers_matte/model_cards.
MODEL_CARD_DIR = Path(__file__).parent / "model_cards"
if not MODEL_CARD_DIR.is_dir():  # a source checkout (editable install)
    MODEL_CARD_DIR = Path(__file__).resolve().parents[2] / "model_cards"
DEFAULT_MODEL_CARD = "soft_grounding_matting.md"


def save_pretrained_with_code(pipeline, save_directory: str | os.PathLike, **save_kwargs) -> None:
    """`pipeline.save_pretrained(save_directory, **save_kwargs)`, then the code and a `model_index.json` for
    `DiffusionPipeline.from_pretrained(save_directory, trust_remote_code=True)` (layout in the module docstring).

    Works as well for a pipeline that was itself loaded with `trust_remote_code` (its classes then come from
    diffusers' module cache; its own `save_pretrained` writes the code too, so that such a folder reloads).
    """
    pipeline.save_pretrained(save_directory, **save_kwargs)
    add_code_to_saved_pipeline(pipeline, save_directory)


def _installed_module(module: str, class_name: str) -> str | None:
    """The diffusers-matte module that defines `class_name` under the file name `module` of an exported folder, or
    None when the exported code is not ours (another module or class name)."""
    for package in _EXPORTED_FROM:
        name = f"{package}.{module}"
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        if isinstance(getattr(importlib.import_module(name), class_name, None), type):
            return name
    return None


def with_installed_classes(index: dict) -> dict:
    """A `model_index.json` of the exported layout (`save_pretrained_with_code`) with each entry whose code is
    diffusers-matte's own (same module file and class names) pointing at the installed classes instead, so that
    `SoftGroundingMattingPipeline.from_pretrained` loads such a folder without `trust_remote_code`. Entries whose
    code is not ours are kept: diffusers then asks for `trust_remote_code`. Other indexes come back unchanged."""
    index = dict(index)
    class_name = index.get("_class_name")
    if isinstance(class_name, (list, tuple)) and len(class_name) == 2:
        if _installed_module(*class_name) is not None:
            index["_class_name"] = class_name[1]
    for key, entry in index.items():
        if key.startswith("_") or not isinstance(entry, (list, tuple)) or len(entry) != 2:
            continue
        library, name = entry
        if not isinstance(library, str) or "." in library or library in _BUILTIN_LIBRARIES or name is None:
            continue
        installed = _installed_module(library, name)
        if installed is not None:
            index[key] = [installed, name]
    return index


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
