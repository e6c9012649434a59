# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`python -m diffusers_matte ...` (and `accelerate launch -m diffusers_matte ...`): the `diffusers-matte` command."""

import sys

from .cli import main

sys.exit(main())
