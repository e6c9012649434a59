"""The learnability diagnostic: its model reads the sentence, and one short run trains, probes and reports."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import grounding_learnability  # noqa: E402
import synthetic_base_model  # noqa: E402

SPECIAL = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}


@pytest.mark.parametrize(
    "options, inputs",
    [({}, (3, 32, 32)), ({"attention": True}, (3, 32, 32)), ({"latent_channels": 4}, (4, 8, 8))],
    ids=["film", "attention", "latents"],
)
def test_model_predicts_on_the_latent_grid_and_depends_on_the_sentence(options, inputs):
    torch.manual_seed(0)
    model = grounding_learnability.FiLMGroundingNet(vocab_size=20, max_length=8, special_tokens=SPECIAL, **options)
    model.eval()
    pixels = torch.randn(1, *inputs).expand(2, -1, -1, -1)
    ids = torch.tensor([[0, 5, 6, 1, 1, 1, 1, 1], [0, 7, 8, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        logits = model(pixels, ids)
    assert logits.shape == (2, 1, 8, 8)
    assert not torch.allclose(logits[0], logits[1])  # same image, other sentence: another prediction


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    from diffusers_matte.data.synthetic import load_synthetic_matting

    work = tmp_path_factory.mktemp("learnability")
    data = load_synthetic_matting(3, 1, seed=5, image_size=64, cache_dir=str(work / "cache"))
    data.save_to_disk(str(work / "data"))
    synthetic_base_model.build_tokenizer(data["train"]).save_pretrained(work / "base" / "tokenizer")
    return work


def test_a_short_run_probes_at_each_interval_and_writes_the_table(work_dir, tmp_path):
    output = tmp_path / "learnability.md"
    arguments = ["--work_dir", str(work_dir), "--steps", "3", "--probe_every", "2", "--batch_size", "4"]
    grounding_learnability.main([*arguments, "--output", str(output)])
    text = output.read_text()
    table = [line for line in text.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]  # step, pairs seen
    assert [line.split(" | ")[0] for line in table] == ["| 2", "| 3"]  # every 2 steps and the last one
    assert "--steps 3 --batch_size 4 --probe_every 2" in text  # the command, with what differs from the defaults
    assert "| the ground truth |" in text  # the oracles' calibration table
    again = tmp_path / "again.md"
    grounding_learnability.main([*arguments, "--output", str(again)])
    strip = lambda t: [line.split(" | ", 3)[-1] for line in t.splitlines() if line.startswith("| ")]  # noqa: E731
    assert strip(again.read_text()) == strip(text)  # seeded: the same probe values, minutes aside
    log = tmp_path / "run.log"
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]
    log.write_text("loading...\n" + "\n".join(json.dumps(_row(line)) for line in rows) + "\n")
    rebuilt = tmp_path / "rebuilt.md"
    grounding_learnability.main([*arguments, "--output", str(rebuilt), "--from_log", str(log)])
    assert rebuilt.read_text().replace(str(rebuilt), "") == text.replace(str(output), "")  # no training, same report


def test_a_run_on_the_base_vae_latents_with_attention(work_dir, tmp_path):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 8),
        norm_num_groups=4,
        latent_channels=4,
    )
    vae.save_pretrained(work_dir / "base" / "vae")
    output = tmp_path / "latents.md"
    arguments = ["--work_dir", str(work_dir), "--steps", "2", "--batch_size", "4", "--inputs", "latents"]
    grounding_learnability.main([*arguments, "--attention", "--output", str(output)])
    assert "--inputs latents --attention`" in output.read_text()  # a switch is written without a value
    assert len([line for line in output.read_text().splitlines() if re.match(r"\| 2 \| 8 \|", line)]) == 1


def _row(line: str) -> dict:
    """A printed probe row that gives `line` back: its step and pairs, and a probe with those ratios."""
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    ratios = dict(zip((*grounding_learnability.TEXT_TYPES, "all"), map(float, cells[3:8])))
    probe = {kind: {"referred": ratio, "others": 1.0} for kind, ratio in ratios.items()}
    probe["all"]["sad"] = float(cells[8])
    return {"step": int(cells[0]), "samples": int(cells[1]), "minutes": float(cells[2]), "probe": probe}


def test_oracle_ratios_fall_as_the_mass_moves_to_another_instance(work_dir):
    _, test_rows = grounding_learnability.load_splits(
        grounding_learnability.argparse.Namespace(work_dir=work_dir, num_test_images=1)
    )
    calibration = grounding_learnability.oracle_calibration(test_rows)
    ratio = {name: means["referred"] / means["others"] for name, means in calibration.items()}
    mixes = ["the ground truth", *(name for name in ratio if "another" in name)]
    ordered = [ratio[name] for name in mixes]
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered)
    assert ratio["the ground truth"] > 2 * ratio["half of it, half of another instance"]
