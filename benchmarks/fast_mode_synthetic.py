#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Fast mode at small scale: does the `AutoencoderTiny` encoder cost accuracy on the synthetic replication?

On a finished `synthetic_ablation.py` work folder, through the project's own scripts:

1. `training/train_tiny_encoder.py` distils a tiny encoder (TAESD's architecture, narrowed and with one
   down-sampling fewer, for the stand-in VAE's 4x grid) into the latent space of variant (c)'s VAE;
2. `training/train_matting_decoder.py --vae_model_name_or_path ... --train_unet` fine-tunes (c)'s student and
   matting decoder briefly on the tiny encoder's latents: the fast pipeline;
3. both pipelines, and (c) with the tiny encoder swapped in without fine-tuning, are evaluated on the synthetic
   test split with the project's harness; SAD and MSE with 95% bootstrap intervals, and the paired SAD
   difference fast - default.

    python benchmarks/fast_mode_synthetic.py --work_dir outputs/v2 --out_dir outputs/fast

`--install_demo` copies the tiny encoder to the demonstration model's `vae_tiny/` (what `predict --fast` runs), when
the demonstration model is that work folder's (c). Results go to `benchmarks/results/fast_mode_synthetic.md`. Each trained folder is kept and not trained again
(`synthetic_ablation.Stages`).
"""

import argparse
import filecmp
import json
import shutil
from pathlib import Path

from ablation_statistics import format_interval, paired_difference, summarize_samples
from synthetic_ablation import BASELINE, DEMO_DIR, NO_MILESTONES, Stages, evaluate, stage_arguments

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results" / "fast_mode_synthetic.md"
# TAESD's encoder (64 channels, blocks of 1-3-3-3) with one stage fewer: the stand-in VAE halves twice, not thrice.
TINY_CONFIG = dict(
    encoder_block_out_channels=[32, 32, 32],
    decoder_block_out_channels=[32, 32, 32],
    num_encoder_blocks=[1, 2, 2],
    num_decoder_blocks=[2, 2, 1],
    latent_channels=4,
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, required=True, help="a finished synthetic_ablation.py work folder")
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--encoder_steps", type=int, default=1500)
    parser.add_argument("--finetune_steps", type=int, default=300)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--install_demo", action="store_true", help=f"copy the tiny encoder to {DEMO_DIR}/vae_tiny")
    args = parser.parse_args(argv)
    work, out = args.work_dir, args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    sizes = json.loads((work / "recipe.json").read_text())
    default, data = work / "pipeline_c", work / "data"
    common = stage_arguments(data, sizes, args.seed)
    config = out / "tiny_config.json"
    config.write_text(json.dumps(TINY_CONFIG))
    stages = Stages(out)  # a stage whose folder is complete is not run again
    tiny = stages.run(
        "tiny encoder distillation", "train_tiny_encoder", out / "tiny_encoder", "--pretrained_model_name_or_path", default, *common, "--tiny_config", config,
        "--max_train_steps", args.encoder_steps, "--learning_rate", 1e-3, *NO_MILESTONES,
    )  # fmt: skip
    fast = stages.run(
        "student + decoder fine-tuning", "train_matting_decoder", out / "pipeline_fast", "--pretrained_model_name_or_path", work / "base", *common,
        "--vae_model_name_or_path", tiny, "--student_model_name_or_path", default,
        "--decoder_model_name_or_path", default, "--train_unet", "--max_train_steps", args.finetune_steps,
        "--learning_rate", 2e-4, *NO_MILESTONES,
    )  # fmt: skip
    swapped = out / "pipeline_swapped"
    if not (swapped / "model_index.json").exists():
        from diffusers_matte import SoftGroundingMattingPipeline
        from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import load_vae

        SoftGroundingMattingPipeline.from_pretrained(default, vae=load_vae(tiny)).save_pretrained(swapped)
    default_name, swapped_name = (
        "default: (c), SD-style VAE encoder",
        "(c) with the tiny encoder swapped in, not fine-tuned",
    )
    pipelines = {
        default_name: default,
        swapped_name: swapped,
        "fast: tiny encoder, student and decoder fine-tuned on its latents": fast,
    }
    names = list(pipelines)
    table, samples = evaluate(pipelines, data, out)
    # each pipeline's paired SAD difference against the default, for the results file and the card
    differences = {
        name: format_interval(*paired_difference(samples[name], samples[default_name])) for name in names[1:]
    }
    write_results(args, sizes, table, samples, stages.seconds, names, differences)
    if args.install_demo:
        install_demo_encoder(tiny, default, differences[swapped_name])


CARD_NOTE_START = "Fast mode: `vae_tiny/`"
CARD_NOTE = """
Fast mode: `vae_tiny/` holds an `AutoencoderTiny` whose encoder was distilled into this model's VAE latents
(`benchmarks/fast_mode_synthetic.py --install_demo`); `diffusers-matte predict --fast` runs it in place of the VAE
(swapped in without fine-tuning: SAD {difference} on the synthetic test split,
`benchmarks/results/fast_mode_synthetic.md`).
"""


def install_demo_encoder(tiny: Path, pipeline: Path, difference: str) -> None:
    """The tiny encoder into the demonstration model's `vae_tiny/`, if that model is `pipeline`; its card quotes
    `difference`, the measured SAD change of swapping it in."""
    weights = "unet/diffusion_pytorch_model.safetensors"
    if not filecmp.cmp(DEMO_DIR / weights, pipeline / weights, shallow=False):
        raise SystemExit(f"--install_demo: the demonstration model in {DEMO_DIR} is not {pipeline}; install it first.")
    shutil.rmtree(DEMO_DIR / "vae_tiny", ignore_errors=True)
    shutil.copytree(tiny / "vae", DEMO_DIR / "vae_tiny")
    card = DEMO_DIR / "README.md"
    text = card.read_text().split(CARD_NOTE_START)[0]  # an earlier install's note is replaced
    card.write_text(text.rstrip("\n") + "\n" + CARD_NOTE.format(difference=difference))
    print(f"installed the tiny encoder in {DEMO_DIR / 'vae_tiny'}")


def write_results(
    args, sizes: dict, table: dict, samples: dict, seconds: dict, names: list, differences: dict
) -> None:
    empty = table[BASELINE]["mean"]
    lines = [
        "# Fast mode at small scale (synthetic replication)",
        "",
        f"Command: `python benchmarks/fast_mode_synthetic.py --work_dir {args.work_dir} --out_dir {args.out_dir}"
        + (" --install_demo" if args.install_demo else "")
        + "`",
        "",
        f"Variant (c) of `{args.work_dir}` (see `synthetic_ablation.md`); a tiny encoder {TINY_CONFIG} distilled "
        f"{args.encoder_steps} steps into its VAE's latents, then its student and matting decoder fine-tuned "
        f"{args.finetune_steps} steps on the tiny latents (`train_matting_decoder.py --train_unet`), "
        f"batch {sizes['batch_size']} at {sizes['resolution']} px. Test split, every expression; 95% bootstrap "
        "intervals over instances.",
        "",
        "| pipeline | SAD | MSE | SAD / default |",
        "|---|---|---|---|",
    ]
    base_sad = table[names[0]]["mean"]["sad"]
    for name in [BASELINE, *names]:
        stats = summarize_samples(samples[name])["all"]
        ratio = table[name]["mean"]["sad"] / base_sad
        lines.append(
            f"| {name} | {format_interval(*stats['sad'])} | {format_interval(*stats['mse'], 4)} | {ratio:.3f} |"
        )
    lines += ["", "Paired SAD differences against the default (over the same samples; below zero: better):", ""]
    lines += [f"- {name}: {difference}" for name, difference in differences.items()]
    lines += ["", f"Empty matte SAD for scale: {empty['sad']:.3f}.", "", "Wall time on this machine:", ""]
    lines += [f"- {stage}: {value / 60:.1f} min" for stage, value in seconds.items()]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
