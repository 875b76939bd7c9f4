"""Reported tables of other papers: Liu et al.'s Table 4, and the Corel 5K rows it shares
with HAAN's Table 3."""
import math
import os
from pathlib import Path

import pytest

from haan_core.reported import HAAN_OWN, LIU_OWN, load, shared_corel5k_rows

# the papers' texts, where this machine has them (the project does not ship them)
PAPERS = Path(os.environ.get("HAAN_PAPERS",
                             Path(__file__).resolve().parents[2] / "shared" / "paper"))
LIU_TEXT = PAPERS / "liu2023_multigrained_multimargin.txt"


def test_liu_table4_has_every_method_and_consistent_averages():
    t = load("liu2023_table4")
    assert t.attrs["source"] == "reported"
    assert len(t) == 14 and t["method"].iloc[-1] == LIU_OWN
    for _, r in t.iterrows():
        for ds in ("pascal", "corel5k", "nuswide5k"):
            i2t, t2i, avg = r[f"{ds}_i2t"], r[f"{ds}_t2i"], r[f"{ds}_avg"]
            if math.isnan(avg):
                assert math.isnan(i2t) and math.isnan(t2i), (r["method"], ds)
            else:   # the printed average is the mean of the two directions, to rounding
                assert abs((i2t + t2i) / 2 - avg) <= 0.0006, (r["method"], ds)


@pytest.mark.skipif(not LIU_TEXT.exists(), reason="Liu et al.'s text is not on this machine")
def test_liu_table4_csv_matches_the_papers_text():
    text = LIU_TEXT.read_text()
    lines = text[text.index("Table 4. MAP of our method"):].splitlines()
    printed = {}
    for line in lines[4:]:      # the title, a blank line and two header lines
        cells = line.split("\t")
        if len(cells) < 10:
            break
        printed[cells[0]] = [None if c.strip() == "—" else float(c) for c in cells[1:10]]
    printed[LIU_OWN] = printed.pop("Our method")
    t = load("liu2023_table4").set_index("method")
    assert sorted(printed) == sorted(t.index)
    for method, values in printed.items():
        for v, got in zip(values, t.loc[method].tolist()):
            assert (v is None and math.isnan(got)) or v == got, method


def test_shared_corel5k_rows_are_the_methods_in_both_tables_and_the_own_rows():
    shared = shared_corel5k_rows()
    assert shared["HAAN's Table 3"].tolist() == ["JRL", "JFSSL", "DCCA", HAAN_OWN]
    assert shared["Liu et al.'s Table 4"].tolist()[-1] == LIU_OWN
    haan = load("table3").set_index("method")
    liu = load("liu2023_table4").set_index("method")
    last = shared.iloc[-1]
    assert last["HAAN T3 I2T"] == haan.loc["HAAN", "corel5k_i2t"] == 0.5703
    assert last["Liu T4 I2T"] == liu.loc[LIU_OWN, "corel5k_i2t"] == 0.5801
    assert last["diff I2T"] == pytest.approx(0.0098)
    assert last["diff AVG"] == 0.0
    jfssl = shared.set_index("HAAN's Table 3").loc["JFSSL"]
    assert jfssl["diff I2T"] == pytest.approx(-0.0002)


@pytest.mark.skipif(not LIU_TEXT.exists(), reason="Liu et al.'s text is not on this machine")
def test_liu_table3_training_seconds_match_the_papers_text():
    text = LIU_TEXT.read_text()
    block = text[text.index("Table 3. Training time of different datasets."):].splitlines()
    names = {"Pascal Sentence": "pascal", "Corel 5K": "corel5k", "NUS-WIDE 5K": "nuswide5k"}
    printed = {}
    for line in block:
        cells = line.split("\t")
        if cells[0] in names:
            printed[names[cells[0]]] = [int(c.strip().rstrip("s").strip()) for c in cells[1:4]]
    t = load("liu2023_table3").set_index("dataset")
    assert t.attrs["source"] == "reported" and sorted(printed) == sorted(t.index)
    for ds, values in printed.items():
        assert t.loc[ds].tolist() == values, ds
