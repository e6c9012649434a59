# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""diffusers-matte: text-grounded alpha matting with diffusion models (Xiang et al., TMLR 2025)."""

__version__ = "0.1.0.dev0"
