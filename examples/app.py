# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The web demo as a Hugging Face Space (or any `python app.py`): the same app as `diffusers-matte demo`.

    python examples/app.py                       # http://127.0.0.1:7860
    DIFFUSERS_MATTE_MODEL=you/your-model python examples/app.py

For a Space, copy this file to the Space's root as `app.py`, with a `requirements.txt` holding
`diffusers-matte[demo]` (or this repository). The model is `DIFFUSERS_MATTE_MODEL` (a pipeline folder or a Hub id;
default: the demonstration checkpoint shipped in the package). A Space sets `GRADIO_SERVER_NAME` and
`GRADIO_SERVER_PORT`; elsewhere the app listens on 127.0.0.1 only.
"""

import os
from pathlib import Path

from diffusers_matte.cli.common import load_pipeline, resolve_device_and_dtype
from diffusers_matte.demo import create_demo, launch_demo

device, dtype = resolve_device_and_dtype(os.environ.get("DIFFUSERS_MATTE_DEVICE"), None)
pipe = load_pipeline(os.environ.get("DIFFUSERS_MATTE_MODEL"), device, dtype)
# The example images and prompts beside this file (gallery.json and images/), when they are there.
demo = create_demo(pipe, examples=Path(__file__).with_name("gallery.json"))

if __name__ == "__main__":
    launch_demo(demo, host=None, port=None)
