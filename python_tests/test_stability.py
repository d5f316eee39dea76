"""Drop statistics and the opt-in stabilised fitting modes (strainer_fast.stability)."""

import math

import numpy as np
import pytest
import torch

from strainer_fast.cli import main
from strainer_fast.fit import fit_many
from strainer_fast.models import Strainer
from strainer_fast.stability import STABILIZE, drop_stats, find_drops, make_stabilizer
from strainer_fast.train import Callback, Stabilize, image_mse, train


def synthetic_curve() -> np.ndarray:
    c = np.linspace(10, 40, 200)
    c[50:60] -= 5.0          # a 5 dB drop, recovered by step 60
    c[100:103] -= 0.5        # a 0.5 dB wobble: below the threshold
    c[190:] = c[189] - 3.0   # a 3 dB drop that never recovers
    return c


def test_find_drops_counts_depth_and_recovery():
    drops = find_drops(synthetic_curve(), threshold_db=1.0)
    assert len(drops) == 2
    first, last = drops
    assert first["start"] == 50 and first["recovered"]
    assert first["depth_db"] == pytest.approx(5.0, abs=0.2)
    assert last["start"] == 190 and not last["recovered"]
    assert last["depth_db"] == pytest.approx(3.0, abs=0.01)
    assert len(find_drops(synthetic_curve(), threshold_db=0.3)) == 3
    assert find_drops(np.arange(10.0)) == []
    late = find_drops(synthetic_curve(), start=100)  # the recovered drop at 50 is before
    assert [d["start"] for d in late] == [190]
    assert find_drops(synthetic_curve(), start=55)[0]["start"] == 50  # still under way at 55
    with pytest.raises(ValueError, match="start"):
        find_drops(synthetic_curve(), start=-1)


def test_drop_stats_per_signal():
    c = np.stack([synthetic_curve(), np.linspace(10, 40, 200)], 1)
    s = drop_stats(c)
    assert s["count"] == [2, 0]
    assert drop_stats(c, start=100)["count"] == [1, 0]
    assert s["max_depth_db"] == pytest.approx(5.0, abs=0.2)
    assert s["final_psnr"][1] == pytest.approx(40.0)
    with pytest.raises(ValueError):
        drop_stats(c[:, 0])


def _images() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    a = 0.5 + 0.4 * torch.sin(6 * x) * torch.cos(4 * y)
    return torch.stack([a, a.flip(0)])[..., None]


def _run_with_injected_drop(mode: str, at: int = 40, steps: int = 45) -> np.ndarray:
    images = _images()
    model = fit_many(images, "siren", width=32, layers=4, steps=0, device="cpu",
                     progress=False).model
    curve: list[list[float]] = []

    class Knock(Callback):
        order = 30  # after the stabiliser, like a step's own update

        def after_step(self, t, mse: torch.Tensor) -> bool:
            curve.append((10 * torch.log10(4 / mse)).tolist())
            if t.step == at:  # knock network 1 off: shift its output by 0.5
                with torch.no_grad():
                    model.dec_b[-1][1] += 0.5
            return False

    train(model, image_mse(model, images), steps, lr=1e-3, progress=False,
          callbacks=[Stabilize(mode), Knock()])
    return np.asarray(curve)


def test_revert_recovers_from_injected_drop():
    off, rev = _run_with_injected_drop("off"), _run_with_injected_drop("revert")
    at = 40
    # curve[i] is the loss of the weights after i updates; the drop shows at index `at`.
    best_before = off[:at, 1].max()
    assert off[at, 1] < best_before - 3 and rev[at, 1] < best_before - 3
    assert rev[at + 1, 1] > best_before - 1.0          # reverted to the best iterate
    assert off[at + 1, 1] < best_before - 2.0          # plain Adam still far below
    np.testing.assert_allclose(rev[:, 0], off[:, 0], atol=1e-3)  # network 0 untouched


def test_cosine_schedule_and_errors():
    model = Strainer(2, width=8, layers=3, shared=0)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    stab = make_stabilizer("cosine", model, opt, 100)
    stab.before_step(1, torch.ones(2))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    stab.before_step(5, torch.ones(2))
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    stab.before_step(100, torch.ones(2))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="stabilize"):
        make_stabilizer("bogus", model, opt, 10)
    shared = Strainer(2, width=8, layers=3, shared=1)
    for mode in ("clip", "revert"):
        with pytest.raises(ValueError, match="independent"):
            make_stabilizer(mode, shared, torch.optim.Adam(shared.parameters()), 10)


@pytest.mark.parametrize("mode", STABILIZE)
def test_fit_many_modes_record_every_step(mode):
    r = fit_many(_images(), "siren", width=16, layers=3, steps=12, log_every=0, device="cpu",
                 progress=False, stabilize=mode)
    assert len(r.train_psnr) == 12 and all(len(v) == 2 for v in r.train_psnr)
    assert all(math.isfinite(p) for p in r.psnr[-1])


def test_cli_rejects_unknown_stabilize(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "x.png", "--init", "siren", "--out", str(tmp_path), "--stabilize", "no"])
    assert "invalid choice" in capsys.readouterr().err


def test_decay_has_no_warmup_and_chains_with_a_per_network_stabiliser():
    model = Strainer(2, width=8, layers=3, shared=0)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    decay = make_stabilizer("decay", model, opt, 100)
    decay.before_step(1, torch.ones(2))
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0, abs=1e-3)  # no warm-up
    decay.before_step(100, torch.ones(2))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    chain = make_stabilizer("decay+revert", model, opt, 100)
    assert [type(p).__name__ for p in chain.parts] == ["_Decay", "_Revert"]
    chain.before_step(50, torch.ones(2))
    assert 0.1 < opt.param_groups[0]["lr"] < 1.0
    with pytest.raises(ValueError, match="stabilize"):
        make_stabilizer("revert+decay", model, opt, 10)
