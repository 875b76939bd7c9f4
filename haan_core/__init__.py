"""haan_core: HAAN (Wang, Liu, Pei, Xu; Sensors 2023) as a small, tested PyTorch package.

Modules, in the order of the paper:
  corpora     the paper's datasets (Section 4.1) read from their public layouts
  fetch       `data fetch`: download, check and safely extract them
  features    image features of Section 3.2: a global feature and 3 x 3 patch features
  datasets    the data shape HAAN reads, the embedded synthetic default, real datasets
  models      GAN and LAN (Section 3.1-3.2, eqs. 8-9) and the fusion of eq. 7
  similarity  GCM (eq. 10) and LCM (eqs. 11-15)
  losses      AWL (eqs. 16-24) and the triplet loss TRI
  train       the recipe of Section 4.2.3
  metrics     mAP (eq. 25), precision@k, precision-recall curves
  config      Table 2's parameters and the variants of Table 5
  methods     other methods of the literature (so far: Liu et al.'s multi-margin triplet loss)

and for the book:
  runs        trained runs cached on disk, keyed by configuration and method code
  reported    the paper's reported Tables 3, 4 and 6 (labelled "reported")
  measured    committed measured runs on the real data (`python -m haan_core measure`)
  tables      measured numbers beside reported ones
  experiments what the notebooks call
  exercises   answer checks for the book's exercises
  query       `python -m haan_core query`: rank a trained run's test items by your own query
  bench       `python -m haan_core bench`: measured speed beside references
  book        `python -m haan_core.book run|build|list|student|lab|times`: papermill,
              Jupyter Book, the student handout and Jupyter Lab
"""
from .config import DATASET_RECIPES, VARIANTS, HAANConfig
from .errors import HAANInputError

__all__ = ["HAANConfig", "VARIANTS", "DATASET_RECIPES", "HAANInputError"]
__version__ = "0.1.0"
