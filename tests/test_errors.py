"""Bad input raises a clear HAANInputError, not a deep traceback."""
import json
import subprocess
import sys

import pytest
import torch

from haan_core import HAANConfig, HAANInputError
from haan_core.losses import awl, triplet
from haan_core.metrics import mean_average_precision
from haan_core.similarity import gcm, lcm


def test_mismatched_widths():
    with pytest.raises(HAANInputError, match="embedding width"):
        gcm(torch.rand(3, 4), torch.rand(3, 5))
    with pytest.raises(HAANInputError, match="embedding width"):
        lcm(torch.rand(2, 9, 4), torch.rand(3, 5, 6), torch.tensor([1, 2, 3]))


def test_wrong_number_of_dimensions():
    with pytest.raises(HAANInputError, match="2 dimensions"):
        gcm(torch.rand(3, 4, 1), torch.rand(3, 4))


def test_label_vectors_of_the_wrong_length():
    sim = torch.rand(4, 4)
    with pytest.raises(HAANInputError, match="img_labels has 3 entries"):
        awl(sim, torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(HAANInputError, match="gallery_labels has 5 entries"):
        mean_average_precision(sim, torch.zeros(4, dtype=torch.long),
                               torch.zeros(5, dtype=torch.long))
    with pytest.raises(HAANInputError, match="integer class ids"):
        triplet(sim, torch.zeros(4), torch.zeros(4))


def test_empty_batch():
    with pytest.raises(HAANInputError, match="empty"):
        awl(torch.rand(0, 0), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(HAANInputError, match="empty"):
        gcm(torch.rand(0, 4), torch.rand(2, 4))


def test_nan_features():
    x = torch.rand(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(HAANInputError, match="NaN"):
        gcm(x, torch.rand(2, 4))
    with pytest.raises(HAANInputError, match="NaN"):
        awl(x[:, :3], torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))


def test_bad_lengths():
    with pytest.raises(HAANInputError, match="lengths"):
        lcm(torch.rand(2, 9, 4), torch.rand(3, 5, 4), torch.tensor([1, 2]))
    with pytest.raises(HAANInputError, match="1..5"):
        lcm(torch.rand(2, 9, 4), torch.rand(3, 5, 4), torch.tensor([1, 0, 6]))


def test_unknown_dataset_variant_and_field():
    with pytest.raises(HAANInputError, match="unknown dataset 'nope'"):
        HAANConfig.for_dataset("nope")
    with pytest.raises(HAANInputError, match="unknown variant 'HAAN-XL'"):
        HAANConfig.for_dataset("synthetic", variant="HAAN-XL")
    with pytest.raises(HAANInputError, match="unknown configuration field"):
        HAANConfig.for_dataset("synthetic", learning_rate=1.0)


@pytest.mark.parametrize("args,message", [
    (["--variant", "HAAN-XL"], "unknown variant"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--batch-size", "1"], "batch_size must be at least 2"),
])
def test_cli_reports_bad_input_in_one_line(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "haan_core", "train", *args,
                           "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_max_words_must_be_positive():
    from haan_core import HAANConfig
    with pytest.raises(HAANInputError, match="max_words must be at least 1"):
        HAANConfig.for_dataset("wiki", max_words=0).validate()
    HAANConfig.for_dataset("wiki", max_words=1).validate()
