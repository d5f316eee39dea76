"""A stand-in for the self-check's child process (test_selfcheck.py): the real child entry,
``selfcheck._child_main``, on two small problems, after a fault chosen by the first argument:

- ``abort``: the fused forward of the second problem aborts the process (as an illegal address
  inside a kernel kills a CUDA context);
- ``hang``: reports the first problem, then never returns (no torch import: starts at once);
- ``pass``: the real kernel.
"""

from __future__ import annotations

import os
import sys
import time

mode = sys.argv.pop(1)
if mode == "hang":
    print("selfcheck-config tiny hang", flush=True)
    time.sleep(600)

import torch  # noqa: E402

from strainer_fast import selfcheck  # noqa: E402

TINY = [selfcheck.Config("tiny ok", 2, 37, (2, 24, 3), True, True, True),
        selfcheck.Config("tiny crash", 3, 41, (2, 24, 3), False, False, False)]
selfcheck.configs = lambda sms=1: TINY
if mode == "abort":
    real = torch.ops.strainer_fast.fused_mlp_forward

    def crashing(x, *args):
        if x.shape[-2] == TINY[1].points:
            os.abort()
        return real(x, *args)

    torch.ops.strainer_fast.fused_mlp_forward = crashing
sys.exit(selfcheck._child_main())
