# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Packaging for diffusers-matte: text-grounded alpha matting built on diffusers."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

REQUIRED = [
    # Tested with 0.42; our UNet mirrors its signature (tests/test_pinned_outputs.py): raise the bound after a check.
    "diffusers>=0.42.0,<0.43",
    "transformers>=5.0",
    "torch>=2.4",
    "accelerate>=1.0",
    "peft>=0.17",
    "datasets>=4.0",
    "numpy>=1.26",
    "safetensors>=0.4",
    "tokenizers>=0.20",
    "huggingface_hub>=1.0",
    "Pillow>=10.0",
    "scipy>=1.11",
    "tqdm>=4.66",
]

EXTRAS = {
    # spconv's CPU build runs the forward pass only; on CUDA install the spconv-cu12x wheel instead.
    "sparse": ["spconv>=2.3"],
    "train": ["tensorboard>=2.14"],
    # `diffusers-matte demo` (and examples/app.py, a Hugging Face Space) and `diffusers-matte video`.
    "demo": ["gradio>=6.0"],
    "video": ["av>=12.0"],
    # The browser test drives Debian's Chromium (apt-get install chromium) with Playwright's Python package.
    "dev": ["pytest>=8.0", "black>=24.0", "ruff>=0.6", "playwright>=1.40"],
}

setup(
    name="diffusers-matte",
    version="0.1.0.dev0",
    description="Text-grounded alpha matting with diffusion models, native to diffusers.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    # The repository's top-level model_cards/ ships inside the package as diffusers_matte/model_cards.
    package_dir={"": "src", "diffusers_matte.model_cards": "model_cards"},
    packages=[*find_packages("src"), "diffusers_matte.model_cards"],
    include_package_data=True,
    package_data={
        "diffusers_matte": ["assets/**/*", "assets/*"],
        "diffusers_matte.model_cards": ["*.md"],
    },
    python_requires=">=3.10",
    install_requires=REQUIRED,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["diffusers-matte=diffusers_matte.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Multimedia :: Graphics",
    ],
)
