# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Writes BLIP-2 captions for the matting sets that have no text (P3M-10k, AM-2k, RM-1k / image folders).

Paper Sec. 4.1: "we adopt BLIP2 to generate text annotations for each sample in these datasets by guiding the BLIP2
model to describe the appearance of the object in the image". The output is the caption side-file the loaders read
(``captions_file=``): a JSON object ``{image stem: caption}``.

Example::

    python training/caption_dataset.py --dataset am2k --data_dir /data/AM-2k --split train \
        --output_file /data/AM-2k/captions_train.json --model_name_or_path Salesforce/blip2-opt-2.7b
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoProcessor, Blip2ForConditionalGeneration

from diffusers_matte.data.am2k import load_am2k
from diffusers_matte.data.folder import load_image_alpha_folder
from diffusers_matte.data.p3m import load_p3m10k

DEFAULT_MODEL = "Salesforce/blip2-opt-2.7b"
DEFAULT_PROMPT = "Question: describe the appearance of the object in the image. Answer:"


def caption_images(
    images: List[Any],
    model,
    processor,
    prompt: str = DEFAULT_PROMPT,
    max_new_tokens: int = 30,
) -> List[str]:
    """Greedy BLIP-2 captions of a batch of PIL images, prompt removed."""
    processor.tokenizer.padding_side = "left"  # decoder-only generation continues after the prompt
    inputs = processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    if not model.config.text_config.is_encoder_decoder:  # OPT returns prompt + answer; T5 only the answer
        generated = generated[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in processor.batch_decode(generated, skip_special_tokens=True)]


def caption_dataset(
    dataset,
    model,
    processor,
    prompt: str = DEFAULT_PROMPT,
    batch_size: int = 8,
    max_new_tokens: int = 30,
    existing: Optional[Dict[str, str]] = None,
) -> Dict[str, str]:
    """Captions every image of ``dataset`` (rows of the common schema) once, keyed by ``image_id``."""
    captions = dict(existing or {})
    ids = dataset["image_id"]
    todo: Dict[str, int] = {}
    for index, image_id in enumerate(ids):
        if image_id not in captions and image_id not in todo:
            todo[image_id] = index
    items = list(todo.items())
    for start in tqdm(range(0, len(items), batch_size), desc="captioning", unit="batch"):
        chunk = items[start : start + batch_size]
        images = [dataset[index]["image"].convert("RGB") for _, index in chunk]
        for (image_id, _), text in zip(chunk, caption_images(images, model, processor, prompt, max_new_tokens)):
            captions[image_id] = text
    return captions


def load_rows(args: argparse.Namespace):
    kwargs = {"split": args.split, "cache_dir": args.cache_dir}
    if args.dataset == "p3m10k":
        return load_p3m10k(args.data_dir, **kwargs)
    if args.dataset == "am2k":
        return load_am2k(args.data_dir, **kwargs)
    return load_image_alpha_folder(args.data_dir, image_dir=args.image_dir, alpha_dir=args.alpha_dir, **kwargs)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["p3m10k", "am2k", "folder"], required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--image_dir", default="images", help="folder loader: image sub-folder")
    parser.add_argument("--alpha_dir", default="alphas", help="folder loader: alpha sub-folder")
    parser.add_argument("--output_file", required=True, help="caption JSON to write")
    parser.add_argument("--model_name_or_path", default=DEFAULT_MODEL)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--cache_dir", default=None, help="datasets cache folder")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the captions already in --output_file",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_file")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, str]:
    args = parse_args(argv)
    output = Path(args.output_file)
    existing = {}
    if output.exists():
        if args.resume:
            existing = json.loads(output.read_text(encoding="utf-8"))
        elif not args.overwrite:
            raise SystemExit(f"{output} exists; pass --resume to continue it or --overwrite to replace it")
    dataset = load_rows(args)
    processor = AutoProcessor.from_pretrained(args.model_name_or_path)
    model = Blip2ForConditionalGeneration.from_pretrained(args.model_name_or_path, dtype=getattr(torch, args.dtype))
    model = model.to(args.device).eval()
    captions = caption_dataset(
        dataset,
        model,
        processor,
        args.prompt,
        args.batch_size,
        args.max_new_tokens,
        existing,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(captions, indent=1, sort_keys=True), encoding="utf-8")
    print(f"wrote {len(captions)} captions to {output}")
    return captions


if __name__ == "__main__":
    main()
