# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
# Parameters. Re-run with new values:
#   python -m haan_core.book run course -p times_file data/bench/notebook_times.json
times_file = "data/bench/notebook_times.json"   # measured page times (book times --out)

# %% [markdown]
# # A course in three sessions
#
# This page plans a short course on cross-modal retrieval around HAAN {cite}`wang2023haan`:
# three sessions of about two hours, for students who know PyTorch and have read about
# cosine similarity and triplet losses. Each session reads part of the paper, runs pages of
# this book and ends with the pages' exercises. Students work in Jupyter Lab on their own
# laptop (`make lab`; the pages are notebooks there) or on a shared JupyterHub.
#
# **Before the first session** a student runs, once, in a clone of the repository:
#
# ```
# make setup                                    # the pinned environment in ./.venv
# make lab                                      # Jupyter Lab on the notebooks
# ```
#
# and the teacher hands out the notebooks without solutions:
#
# ```
# python -m haan_core.book student handout/ --clear-outputs
# ```
#
# The times below were **measured**: each is how long one page took to execute with its
# default parameters on the machine named under the table (a 2-core CPU, no GPU), read from
# the committed file `data/bench/notebook_times.json` (`python -m haan_core.book times
# --out ...` writes it after a `make book`; without the file, this build's own times).
# They are the times of a first run in the book's order with an empty run cache: a page
# trains what no earlier page trained and reuses the rest, and reads the runs that take
# 10 s or more from those kept in the repository (its KEPT line says which). So the GCM and
# LCM page, which trains HAAN, takes about a minute, and the rest seconds. A class that
# retrains them (`kept_runs = False`) waits about 14 minutes for Table 3 (seven variants,
# ten compared methods) on such a CPU. Run again, any page takes seconds.
# Reading and the exercises are the students' own time; each exercise is written to take
# under ten minutes on a laptop CPU.

# %%
import json
import re
from pathlib import Path

import jupytext
import pandas as pd
from IPython.display import Markdown, display

from haan_core.book import NOTEBOOK_DIR, NOTEBOOKS, REPO, notebook_times

times_path = Path(times_file) if Path(times_file).is_absolute() else REPO / times_file
if times_path.exists():            # relative to the checkout, wherever the kernel runs
    times = json.loads(times_path.read_text())
    source = f"the committed file `{times_file}`"
else:   # no committed times: this build's own runs of the other pages
    times = notebook_times(names=[n for n in NOTEBOOKS if n != "course"])
    source = "this build's own runs (no committed times file was found)"
seconds = times["notebooks"]


def exercises(page):
    """The exercise labels of one page, read from the notebook itself."""
    nb = jupytext.read(NOTEBOOK_DIR / f"{page}.py")
    return [m for c in nb.cells if c.cell_type == "markdown"
            for m in re.findall(r":label:\s*(ex-[\w-]+)", c.source)]


SESSIONS = [
    ("1. Two ways to compare an image and a text",
     "Sections 1-3.3 of the paper: the data, the global network and GCM (eq. 10), "
     "the local network and LCM (eqs. 11-15).",
     ["data_features", "gcm_lcm"]),
    ("2. Which pairs to learn from, and how much",
     "Sections 3.4-3.5: AWL's pair mining (eqs. 16-17) and pair weighting (eqs. 18-23), "
     "the gradient of eq. 24; then Section 4.3's main comparison.",
     ["awl", "table3", "table5_6"]),
    ("3. Reading results critically",
     "Section 4: training time, precision-recall, the margin and fusion weights, the "
     "objective over training and example queries; what the measurements support.",
     ["table4", "figure5", "figure6", "figure7", "figure8", "figure9", "reproducibility"]),
]
assert sorted(p for *_, pages in SESSIONS for p in pages) == \
    sorted(n for n in NOTEBOOKS if n != "course"), "every page belongs to one session"

rows = []
for session, reading, pages in SESSIONS:
    for page in pages:
        rows.append({"session": session, "read in the paper": reading, "run the page": page,
                     "measured run time (s)": seconds[page],
                     "exercises": ", ".join(exercises(page)) or "-"})
plan = pd.DataFrame(rows)
per_session = plan.groupby("session", sort=False)["measured run time (s)"].sum()

# %% [markdown]
# ## The plan

# %%
display(plan.style.hide(axis="index").format({"measured run time (s)": "{:.0f}"})
        .set_caption("Three sessions: what to read, which pages to run, which exercises"))
display(Markdown(
    "Computing time per session (measured, first run): "
    + "; ".join(f"session {s.split('.')[0]}: {t / 60:.1f} min" for s, t in per_session.items())
    + f". Read from {source}: measured on {times['device']}, commit {str(times['commit'])[:10]}"
    + (" (with uncommitted changes)" if times.get("dirty") else "")
    + f", {times['time_utc']}."))

# %% [markdown]
# ## How each session runs
#
# 1. **Read** (30 min). The part of the paper named in the plan, with the page open beside
#    it: each page names the equations it implements.
# 2. **Run** (the measured time above). Run the page top to bottom (Run > Run All Cells
#    in Jupyter Lab). While a page trains, discuss what its first cells show.
# 3. **Exercises** (about an hour). Two or three per page, in the order of the plan. A cell
#    under an exercise whose answer is a number or a shape checks the student's answer
#    and says what is wrong without giving the answer away. The book's pages hold the
#    solutions, folded; the handout does not.
# 4. **Change one parameter** (the rest of the session). Each page's first cell holds its
#    parameters; the researcher's way to re-run a page is
#    `python -m haan_core.book run PAGE -p NAME VALUE`, which refuses a misspelt name or a
#    value of the wrong type before anything runs.
#
# Session 3 ends with the students' own queries on a trained run:
#
# ```
# python -m haan_core query "sky water beach"
# ```
#
# and a discussion of the {doc}`../ambiguity_log`: which choices the paper left open, and
# which of them could change a number in its tables.
