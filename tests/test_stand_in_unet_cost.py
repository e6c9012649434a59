"""The stand-in UNet cost benchmark: every candidate is timed, compared with the stand-in, and its student sized."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import stand_in_unet_cost  # noqa: E402


def test_a_short_run_writes_one_row_per_candidate(tmp_path):
    output = tmp_path / "cost.md"
    stand_in_unet_cost.main(["--batch_size", "1", "--rounds", "1", "--output", str(output)])
    text = output.read_text()
    assert "--batch_size 1 --rounds 1" in text  # the command, with what differs from the defaults
    lines = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    assert [row[0] for row in rows] == list(stand_in_unet_cost.CANDIDATES)
    assert rows[0][2] == "1.00"  # ratios are to the stand-in itself
    students = [row[4] for row in rows]
    assert float(students[0]) < float(rows[0][3])  # BK-SDM's student is smaller than its teacher
    assert students[-1].startswith("cannot be pruned: The 'tiny' variant")  # three levels: no plain lowest level
