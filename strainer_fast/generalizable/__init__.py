"""Generalizable INRs, the paper's Table 3 baselines at reduced scale: TransINR (Chen and
Wang, ECCV 2022) and IPC (Kim et al., CVPR 2023). A transformer reads an image's patches and
predicts the weights of a sine-MLP hyponet of the library's shape; test-time optimisation
(TTO) then fits every hyponet weight from the prediction on the fused ops.

    model = train_generalizable("transinr", size=32, steps=1000, out="transinr.pt")
    model = load_generalizable("transinr.pt")
    ff = fit_generalizable(test, model, tto=False)          # feed-forward only
    tto = fit_generalizable(test, model, steps=300)         # + TTO from the prediction

Modules: ``transformer`` (patch tokenizer, encoder), ``base`` (what both share),
``transinr``, ``ipc``, ``data`` (the 69-slice training set, augmentation), ``training``,
``checkpoint``, ``tto``.
"""

from .base import GeneralizableINR
from .checkpoint import KINDS, load_generalizable, make_model, save_generalizable
from .data import load_slices
from .ipc import IPC
from .training import generalizable_model, predict, resolve_generalizable, train_generalizable
from .transinr import TransINR
from .tto import fit_generalizable

GEN_METHODS = ("transinr", "transinr-tto", "ipc", "ipc-tto")  # methods of ``compare``

__all__ = ["GEN_METHODS", "GeneralizableINR", "TransINR", "IPC", "KINDS", "make_model", "train_generalizable",
           "predict", "fit_generalizable", "save_generalizable", "load_generalizable",
           "generalizable_model", "resolve_generalizable", "load_slices"]
