"""Methods from the papers HAAN is read beside (issue #11), one module per method.

So far: :mod:`haan_core.methods.liu`, the multi-margin triplet loss of Liu et al. (2023),
eqs. 14-18. HAAN itself lives in :mod:`haan_core.models`.
"""
