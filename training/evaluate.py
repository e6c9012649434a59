#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Evaluates a pipeline checkpoint (or a trivial baseline) on an evaluation set with the paper's protocols.

Prints and writes SAD, MSE, GRAD, CONN (DIM evaluate.m scales) and the time per sample, overall and per text type;
see `diffusers_matte.evaluation` for the protocols and the output files. Re-running the same command resumes.

Examples::

    # RefMatte-RW100 at 512x512, every instance with each of its 4 expressions (paper Sec. 4.3)
    python training/evaluate.py --model outputs/pipeline --protocol refmatte_rw100 \
        --data_dir /data/RefMatte_RW_100 --output_dir eval/rw100 --batch_size 8

    # AM-2k at full resolution with BLIP-2 captions (Sec. 4.4)
    python training/evaluate.py --model outputs/pipeline --protocol am2k --data_dir /data/AM-2k \
        --captions_file /data/AM-2k/captions_validation.json --output_dir eval/am2k

    # RefMatte-Test at full resolution (the paper's Tab. 7 setting), metrics in 8 worker processes
    python training/evaluate.py --model outputs/pipeline --protocol refmatte_test --data_dir /data/RefMatte \
        --resolution 0 --metric_workers 8 --output_dir eval/refmatte_full

    # the all-zero baseline on the synthetic test split
    python training/evaluate.py --baseline zeros --protocol synthetic --data_dir data/synthetic --output_dir eval/zeros
"""

import argparse
import sys
from typing import Optional, Sequence

from diffusers_matte.cli import UsageError
from diffusers_matte.cli.evaluate import add_evaluate_arguments, run_evaluate


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_evaluate_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run_evaluate(args)
    except UsageError as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
