# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The tiny models run in milliseconds on one thread; on a shared, busy CPU several threads wait on each
    other for far longer than the work takes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
