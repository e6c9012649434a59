# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`python -m diffusers_matte.cli ...`, the same as the `diffusers-matte` command."""

import sys

from . import main

sys.exit(main())
