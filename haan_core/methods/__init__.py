"""Methods from the papers HAAN is read beside (issue #11), one module per method.

So far: :mod:`haan_core.methods.liu`, the multi-margin triplet loss of Liu et al. (2023),
eqs. 14-18; :mod:`haan_core.methods.shan`, SHAN's network and loss (Ji et al., IJCAI 2021);
:mod:`haan_core.methods.tshsr`, TSHSR's network and loss (Chen et al.).
They are not yet wired into ``train``/``--method``. HAAN itself lives in
:mod:`haan_core.models`.
"""
