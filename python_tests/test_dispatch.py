"""The CUDA launcher's dispatch rules, on the CPU: every branch that pretraining and fitting
reach at the presets' shapes is reached by the self-check's problems.

``_C.dispatch_plan`` replays the launcher's control flow with the rules it dispatches by
(csrc/dispatch.h, compiled into CPU builds too); on a GPU, test_cuda.py checks the plan against
the launcher's own branch counters, so this list cannot drift from the kernels unnoticed.
"""

from __future__ import annotations

import math

import pytest

from strainer_fast import config, selfcheck
from strainer_fast._extension import _C

pytestmark = pytest.mark.skipif(_C is None or not hasattr(_C, "dispatch_plan"),
                                reason="needs the compiled extension with dispatch_plan")

PRECISIONS = {"exact": 0, "bf16": 1, "tf32": 2}
# (SM count, sm_90a kernels taken): H100, A100, H100 with STRAINER_FAST_CUDA_SM90=0
DEVICES = {"H100": (132, True), "A100": (108, False), "H100-sm80": (132, False)}


def plan(c: selfcheck.Config, precision: str, sms: int, sm90: bool, elem_bytes: int = 4):
    return _C.dispatch_plan(c.signals, c.points, list(c.widths), c.shared, c.last_linear,
                            c.need_x, PRECISIONS[precision], elem_bytes, sms, sm90)


def branches(calls, precision, sms, sm90) -> set[str]:
    return {name for c in calls for _, _, name in plan(c, precision, sms, sm90)}


def training_calls(sms: int) -> list[selfcheck.Config]:
    """The fused calls of pretraining (``Strainer``: encoder ``sine_mlp`` + decoders'
    ``batched_sine_mlp``) and fitting (``fit_many``: ``Strainer(K, shared=0)``, every layer
    per signal) at the CUDA presets' shapes, for 1 or 10 training images and 1, 6 (the MRI
    test split) or enough test images to fill the GPU's SMs with one 256-wide dW each."""
    calls = []
    for job, p in config.PRESETS.items():
        p = p["cuda"]
        points = p["points"] if "points" in p else p["size"] ** 2
        inputs, outs = (3, (1,)) if job.startswith("occupancy") else (2, (1, 3))
        for out in outs:
            widths = (inputs,) + (p["width"],) * (p["layers"] - 1) + (out,)
            shared = p["shared"]
            for s in (1, 10):
                calls.append(selfcheck.Config(f"{job} encoder", 1, points, widths[:shared + 1],
                                              True, False, False))
                calls.append(selfcheck.Config(f"{job} decoder S={s}", s, points,
                                              widths[shared:], True, True, True))
            for k in (1, 6, math.ceil(sms / 6)):
                calls.append(selfcheck.Config(f"{job} fit K={k}", k, points, widths, True, True,
                                              False))
    return calls


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_selfcheck_reaches_every_training_branch(device, precision):
    sms, sm90 = DEVICES[device]
    wanted = branches(training_calls(sms), precision, sms, sm90)
    reached = branches(selfcheck.configs(sms), precision, sms, sm90)
    unreached = sorted(wanted - reached)
    print(f"{device} {precision}: training reaches {sorted(wanted)}")
    assert not unreached, f"branches training takes but the self-check does not: {unreached}"


def has(names, site) -> bool:
    return any(n == site or n.startswith(site + "/") for n in names)


def test_the_branches_the_issue_named_are_among_them():
    """The shared-input tensor-core layer (forward GEMM, concatenated dz, dW, grad_x), the
    small FMA layer, sm80 serial split-K, sm90 stream-K split-K dW and the batched dW, for
    tf32 and bf16, sm90 and sm80: a rule change that drops one from training fails here."""
    for precision in ("tf32", "bf16"):
        for device in ("H100", "A100"):
            names = branches(training_calls(DEVICES[device][0]), precision, *DEVICES[device])
            sm = "sm90" if device == "H100" and precision == "bf16" else "sm80"
            fused = "sm90" if device == "H100" else "sm80"
            for site in ("fwd.first_layer", "fwd.gemm.cat", "bwd.dz.cat", "bwd.dx0.gemm.cat",
                         f"bwd.dw.{sm}.split", f"bwd.dw.{sm}.batched", f"bwd.dw.{sm}.cat.split",
                         f"fwd.fused.{fused}", f"bwd.gate.{fused}"):
                assert has(names, site), (precision, device, site, sorted(names))


def test_split_and_batching_rules():
    """N = 8192 gives 4 serial split-K slices (>= 2048 points each), N = 2047 none; S signals
    of a 256-wide layer (6 tiles each) go out as one batched dW launch once S x 6 >= SMs."""
    for n, want in ((8192, "bwd.dw.sm80.split/tf32"), (2047, "bwd.dw.sm80/tf32")):
        c = selfcheck.Config("e", 1, n, (2, 128, 128), True, True, False)
        assert want in [name for _, _, name in plan(c, "tf32", 132, False)]
    for s, batched in ((21, False), (22, True)):
        c = selfcheck.Config("b", s, 128, (2, 256, 256, 3), True, True, False)
        names = [n for _, layer, n in plan(c, "bf16", 132, True) if layer == 1]
        assert ("bwd.dw.sm90.batched/bf16" in names) == batched, names
        assert names.count("bwd.dw.sm90/bf16") == (0 if batched else s)


def test_plan_of_one_decoder_layer():
    """Ten signals' 256 -> 3 decoders on a shared x (the STRAINER-10 decoder call): one
    concatenated GEMM per pass, in scalar-access tf32 kernels (S x 3 = 30 columns)."""
    c = selfcheck.Config("d", 10, 31684, (256, 3), True, True, True)
    assert plan(c, "tf32", 132, True) == [
        (False, 0, "fwd.gemm.cat/tf32a1"), (True, 0, "bwd.dz.cat"),
        (True, 0, "bwd.dw.sm80.cat.split/tf32a1"), (True, 0, "bwd.db.aten"),
        (True, 0, "bwd.dx0.gemm.cat/tf32a1")]
    assert plan(c, "exact", 132, True) == [
        (False, 0, "fwd.aten"), (True, 0, "bwd.dz.cat"), (True, 0, "bwd.dw.aten"),
        (True, 0, "bwd.db.aten"), (True, 0, "bwd.dx0.aten")]


def test_branch_names_are_unique_and_complete():
    names = _C.dispatch_branches()
    assert len(names) == len(set(names))
    every = {n for p in PRECISIONS for d in DEVICES for n in
             branches(training_calls(DEVICES[d][0]) + selfcheck.configs(DEVICES[d][0]), p,
                      *DEVICES[d])}
    assert every <= set(names)


def test_extent_overflow_is_a_clear_error():
    """S x width beyond INT_MAX: the launcher's GEMM extents are int (a checked narrowing)."""
    c = selfcheck.Config("huge", 65535, 10, (16, 40000), True, True, False)
    with pytest.raises(ValueError, match="forward GEMM width .* exceeds INT_MAX"):
        plan(c, "tf32", 132, False)
    with pytest.raises(ValueError, match="at most 65535 signals"):
        plan(selfcheck.Config("s", 65536, 10, (16, 4), True, True, False), "tf32", 132, False)
    with pytest.raises(ValueError, match="dispatch_plan needs"):
        plan(selfcheck.Config("f64", 1, 10, (16, 4), True, True, False), "tf32", 132, False, 8)
