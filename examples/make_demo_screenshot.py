# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Drives the web demo in headless Chromium and saves a screenshot: examples/demo_screenshot.png of the README.

    python examples/make_demo_screenshot.py --output examples/demo_screenshot.png

It serves `diffusers-matte demo`'s app on a free local port (the demonstration checkpoint unless --model says
otherwise), opens it in Chromium (Debian's `chromium` package, /usr/bin/chromium, driven by Playwright's Python
package; Playwright's own browser download is not needed), uploads an example image, types its prompts one per
line, presses "Matte", waits for the results and takes a screenshot of the whole page. The functions below are
also the steps of the browser test (tests/test_demo_browser.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EXAMPLES = Path(__file__).resolve().parent
# Headless, as root, on a machine without network: no sandbox (root), no GPU, and none of Chromium's background
# connections (updates, sync, field trials), which a closed network refuses one by one.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1280, "height": 900}


def chromium_executable() -> Optional[str]:
    """The Chromium to drive: $CHROMIUM_PATH, /usr/bin/chromium or a `chromium` on the PATH; None if there is none."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """Serve a `create_demo` app on a free local port for the duration of the block; yields its URL."""
    from diffusers_matte.demo import launch_demo

    launch_demo(app, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url
    finally:
        app.close()


@contextlib.contextmanager
def browser_page(executable: str) -> Iterator:
    """A fresh headless Chromium page (own empty profile); closed with the block."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport=VIEWPORT,
            accept_downloads=True,
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def upload_and_type(page, url: str, image: str | Path, prompts: Sequence[str]) -> None:
    """Open the demo, upload `image` and type the prompts into the prompt box, one per line."""
    page.goto(url)
    page.locator("#image input[type=file]").set_input_files(str(image))
    page.locator("#image img").first.wait_for()  # the upload is shown
    box = page.locator("#prompts textarea")
    box.click()
    for k, prompt in enumerate(prompts):
        if k:
            box.press("Enter")  # a new line (Shift+Enter would submit)
        box.press_sequentially(prompt)


def submit_and_wait(page, timeout_s: float = 120.0) -> list[str]:
    """Press "Matte" and wait until the download links are there; returns the names of the files offered."""
    page.locator("#submit").click()
    links = page.locator("#files a[download]")
    links.first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_load_state("networkidle")
    return [links.nth(k).get_attribute("download") for k in range(links.count())]


def download(page, name: str, folder: str | Path) -> Path:
    """Click the download link of the file `name`, as a person would, and save what the browser receives."""
    with page.expect_download() as info:
        page.locator(f'#files a[download="{name}"]').click()
    target = Path(folder) / name
    info.value.save_as(target)
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(EXAMPLES / "demo_screenshot.png"))
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id (default: the demonstration one)")
    parser.add_argument("--example", type=int, default=0, help="which entry of examples/gallery.json to show")
    parser.add_argument("--num-prompts", type=int, default=2, help="how many of its prompts to type")
    args = parser.parse_args(argv)

    import torch

    from diffusers_matte.cli.common import load_pipeline
    from diffusers_matte.demo import create_demo

    executable = chromium_executable()
    if executable is None:
        parser.error("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    entry = json.loads((EXAMPLES / "gallery.json").read_text())[args.example]
    pipe = load_pipeline(args.model, torch.device("cpu"), torch.float32)
    app = create_demo(pipe)
    with served(app) as url, browser_page(executable) as page:
        upload_and_type(page, url, EXAMPLES / entry["image"], entry["prompts"][: args.num_prompts])
        submit_and_wait(page)
        page.screenshot(path=args.output, full_page=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
