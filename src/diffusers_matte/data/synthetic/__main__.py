# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`python -m diffusers_matte.data.synthetic --output_dir ...`: generate the set and save it to disk."""

from .builder import main

main()
