"""Numbers REPORTED in the paper (Tables 3, 4, 6), and in Liu et al.'s Table 4, as pandas
tables.

Every table returned here carries ``attrs["source"] = "reported"``; measured tables carry
"measured". The book never mixes the two: see :mod:`haan_core.tables`.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

FILES = {"table3": "table3_reported_map.csv",
         "table4": "table4_reported_training_seconds.csv",
         "table6": "table6_reported_ablation_map.csv",
         # Liu et al., Cross-media retrieval via fusing multi-modality and multi-grained
         # data (2023), Table 4: mAP on Pascal Sentence, Corel 5K and NUS-WIDE 5K
         "liu2023_table4": "liu2023_table4_reported_map.csv",
         # ... and their Table 3: training seconds of Framework I and of Framework II for
         # 10,000 and 20,000 iterations, on an Intel Core i5-9400F with an Nvidia GPU
         # (printed "GTX 2080", 8 GB) and 48 GB of RAM
         "liu2023_table3": "liu2023_table3_reported_training_seconds.csv"}
LIU_HARDWARE = "Intel Core i5-9400F, Nvidia GPU printed as \"GTX 2080\" (8 GB), 48 GB RAM"

# dataset names of haan_core -> column prefixes of the CSVs
COLUMN_PREFIX = {"corel5k": "corel5k", "pascal": "pascal", "wiki": "wiki"}
DATASET_TITLES = {"corel5k": "Corel 5K", "pascal": "Pascal Sentence", "wiki": "Wiki",
                  "synthetic": "synthetic (embedded)"}


def load(table: str) -> pd.DataFrame:
    """A reported table: "table3" (mAP), "table4" (training seconds), "table6" (ablation),
    "liu2023_table4" (Liu et al.'s mAP; an empty cell is a method they did not report) or
    "liu2023_table3" (Liu et al.'s training seconds per dataset)."""
    if table not in FILES:
        raise ValueError(f"unknown reported table {table!r}; known: {sorted(FILES)}")
    with resources.files("haan_core.paper_tables").joinpath(FILES[table]).open() as f:
        df = pd.read_csv(f)
    df.attrs["source"] = "reported"
    return df


def reported_map(dataset: str) -> pd.DataFrame:
    """Reported I2T/T2I/AVG on one dataset for every method of Tables 3 and 6, indexed by
    method name. Empty for a dataset the paper did not use (e.g. the synthetic one)."""
    if dataset not in COLUMN_PREFIX:
        return pd.DataFrame(columns=["i2t", "t2i", "avg", "table"]).rename_axis("method")
    p = COLUMN_PREFIX[dataset]
    rows = []
    for name, key in (("Table 3", "table3"), ("Table 6", "table6")):
        df = load(key)
        method_col = "method" if "method" in df else "model"
        for _, r in df.iterrows():
            rows.append({"method": r[method_col], "i2t": r[f"{p}_i2t"], "t2i": r[f"{p}_t2i"],
                         "avg": r[f"{p}_avg"], "table": name})
    out = pd.DataFrame(rows).drop_duplicates("method").set_index("method")
    out.attrs["source"] = "reported"
    return out


# Liu et al.'s row of their own method, and the HAAN row it is laid beside
LIU_OWN, HAAN_OWN = "Liu et al. (their method)", "HAAN"


def shared_corel5k_rows() -> pd.DataFrame:
    """Corel 5K rows that HAAN's Table 3 and Liu et al.'s Table 4 both report, side by side
    with the difference (Liu et al. minus HAAN): the compared methods both list, and each
    paper's own method. Both columns are REPORTED numbers."""
    haan = load("table3").set_index("method")
    liu = load("liu2023_table4").set_index("method").dropna(subset=["corel5k_avg"])
    pairs = [(m, m) for m in haan.index if m in liu.index] + [(HAAN_OWN, LIU_OWN)]
    rows = []
    for h, l in pairs:
        row = {"HAAN's Table 3": h, "Liu et al.'s Table 4": l}
        for m in ("i2t", "t2i", "avg"):
            row[f"HAAN T3 {m.upper()}"] = haan.loc[h, f"corel5k_{m}"]
            row[f"Liu T4 {m.upper()}"] = liu.loc[l, f"corel5k_{m}"]
            row[f"diff {m.upper()}"] = round(liu.loc[l, f"corel5k_{m}"]
                                             - haan.loc[h, f"corel5k_{m}"], 4)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["source"] = "reported"
    return out
