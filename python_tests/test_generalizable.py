"""TransINR / IPC baselines (strainer_fast.generalizable) at tiny sizes: shapes, that the
predicted weights drive the hyponet, training, TTO from the prediction, checkpoints,
compare / CLI integration and bad input."""

import pytest
import torch

import strainer_fast as sf
from strainer_fast.cli import main
from strainer_fast.data import coord_grid, to_target
from strainer_fast.generalizable import (GEN_METHODS, IPC, TransINR, fit_generalizable,
                                         load_generalizable, load_slices, make_model, predict,
                                         save_generalizable, train_generalizable)
from strainer_fast.generalizable.base import GeneralizableINR
from strainer_fast.generalizable.data import augment
from strainer_fast.generalizable.job import parse_checkpoints
from strainer_fast.jobs import parse_methods
from strainer_fast.metrics import psnr

TINY = dict(size=16, width=16, layers=4, dim=32, depth=2, heads=2, patch=8)
KINDS = {"transinr": dict(groups=4), "ipc": dict(rank=4)}


def tiny(kind: str, seed: int = 0, **kw) -> GeneralizableINR:
    model = make_model(kind, **TINY, **KINDS[kind], seed=seed, **kw)
    assert isinstance(model, {"transinr": TransINR, "ipc": IPC}[kind])
    return model


@pytest.fixture(scope="module")
def slices():
    return load_slices(16)[0]


def test_training_set_excludes_evaluation_slices():
    images, z = load_slices(32)
    assert images.shape == (69, 32, 32, 1) and 0 <= images.min() and images.max() <= 1
    held = (34, 55, 69, 89, 103, 124, 48, 110)
    assert min(abs(a - b) for a in z for b in held) > 5


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind, slices):
    model = tiny(kind)
    layers = model(slices[:3])
    assert [tuple(w.shape) for w, _ in layers] == [(3, 16, 2), (3, 16, 16), (3, 16, 16),
                                                    (3, 1, 16)]
    assert [tuple(b.shape) for _, b in layers] == [(3, 16), (3, 16), (3, 16), (3, 1)]
    assert model.render(layers, coord_grid(16, 16)).shape == (3, 256, 1)
    assert predict(model, slices[:3]).shape == (3, 16, 16, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_predicted_weights_drive_the_hyponet(kind, slices):
    """Different input images give different per-image weights and renders; the same image
    twice gives the same."""
    model = tiny(kind)
    batch = torch.stack([slices[10], slices[40], slices[10]])
    out = model.render(model(batch), coord_grid(16, 16))
    assert (out[0] - out[1]).abs().max() > 1e-4
    torch.testing.assert_close(out[0], out[2])
    mod = 0 if kind == "transinr" else 1  # a layer the transformer writes
    w = model(batch)[mod][0]
    assert (w[0] - w[1]).abs().max() > 1e-6


def test_modulation_keeps_siren_scale(slices):
    """TransINR keeps each base row's norm; IPC starts at SIREN's weight scale."""
    model = tiny("transinr")
    for (w, _), base in zip(model(slices[:2]), model.base_w):
        torch.testing.assert_close(w.norm(dim=2), base.norm(dim=1).expand(2, -1))
    w = tiny("ipc")(slices[:2])[1][0]
    bound = (6 / 16) ** 0.5 / 30
    assert 0.3 * bound / 3 ** 0.5 < w.std() < 3 * bound / 3 ** 0.5


def test_init_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b = tiny("transinr", seed=5), tiny("transinr", seed=5)
    assert torch.equal(torch.rand(3), expected)
    for (_, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q)


def _mse(model, images):
    with torch.no_grad():
        out = model.render(model(images), coord_grid(16, 16))
    return float(((out - to_target(images)) ** 2).mean())


@pytest.mark.parametrize("kind", KINDS)
def test_training_reduces_the_loss(kind, slices):
    images = slices[20:28]
    before = _mse(tiny(kind), images)
    model = train_generalizable(kind, images, **TINY, **KINDS[kind], steps=25, batch=4,
                                lr=1e-3, progress=False)
    assert _mse(model, images) < 0.7 * before
    assert model.meta["steps"] == 25 and model.meta["validation_psnr"] > 0


def test_training_stops_where_the_validation_curve_flattens(slices):
    """Validation checks every k steps; with ``min_gain`` the first check gaining less than
    it ends the training (a gain can never reach 1e9 dB), without it the maximum runs."""
    kw = dict(**TINY, rank=4, batch=2, validate_every=2, progress=False)
    model = train_generalizable("ipc", slices[:4], steps=6, min_gain=1e9, **kw)
    m = model.meta
    assert m["steps"] == 2 and m["max_steps"] == 6 and m["stop"].startswith("flat")
    assert m["validation_curve"]["step"] == [0, 2]
    assert m["validation_curve"]["psnr"][-1] == pytest.approx(m["validation_psnr"])
    m = train_generalizable("ipc", slices[:4], steps=6, **kw).meta
    assert m["steps"] == 6 and m["stop"] == "max steps (6)"
    assert m["validation_curve"]["step"] == [0, 2, 4, 6]
    with pytest.raises(ValueError, match="validate_every"):
        train_generalizable("ipc", slices[:4], steps=2, min_gain=0.1,
                            **dict(kw, validate_every=0))


def test_training_with_point_batches(slices):
    model = train_generalizable("ipc", slices[:4], **TINY, rank=4, steps=3, batch=2,
                                points=50, progress=False)
    assert model.meta["points"] == 50


@pytest.mark.parametrize("kind", KINDS)
def test_tto_starts_from_the_prediction(kind, slices):
    model = tiny(kind)
    test = slices[30:33]
    ff = fit_generalizable(test, model, tto=False)
    assert ff.step == [0]
    expected = psnr(predict(model, test), test).tolist()
    assert ff.psnr[0] == pytest.approx(expected, abs=1e-4)
    tto = fit_generalizable(test, model, steps=30, lr=1e-3, log_every=10, progress=False)
    assert tto.step == [0, 10, 20, 30]
    assert tto.psnr[0] == pytest.approx(expected, abs=1e-4)
    assert sum(tto.psnr[-1]) > sum(tto.psnr[0]) + 3
    assert tto.recon.shape == test.shape


def test_tto_with_point_batches_is_seeded_and_differs_from_full_grid(slices):
    model, test = tiny("ipc"), slices[30:32]
    kw = dict(steps=10, lr=1e-3, log_every=10, progress=False)
    a = fit_generalizable(test, model, points=40, seed=3, **kw)
    b = fit_generalizable(test, model, points=40, seed=3, **kw)
    full = fit_generalizable(test, model, **kw)
    assert a.psnr == b.psnr
    assert a.psnr[-1] != full.psnr[-1]


def test_augment(slices):
    g = torch.Generator().manual_seed(0)
    out = augment(slices[:6], g, 2)
    assert out.shape == (6, 16, 16, 1)
    assert not torch.equal(out, slices[:6])
    same = augment(slices[:6], torch.Generator().manual_seed(0), 0)
    for a, b in zip(same, slices[:6]):
        assert torch.equal(a, b) or torch.equal(a, b.flip(1))


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip(kind, slices, tmp_path):
    model = tiny(kind, seed=3)
    path = save_generalizable(model, tmp_path / "m.pt", steps=7)
    loaded = load_generalizable(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.meta["steps"] == 7
    torch.testing.assert_close(predict(loaded, slices[:2]), predict(model, slices[:2]))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_generalizable(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_generalizable(bad)
    enc = tmp_path / "enc.pt"
    sf.save_checkpoint(sf.Strainer(2, width=8, layers=3, shared=1), enc)
    with pytest.raises(ValueError, match="not a strainer_fast generalizable-INR"):
        load_generalizable(enc)
    data = torch.load(save_generalizable(tiny("ipc"), tmp_path / "m.pt"), weights_only=True)
    data["config"]["width"] = 8
    torch.save(data, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match="damaged"):
        load_generalizable(tmp_path / "damaged.pt")


class _Payload:
    """Unpickling this touches ``marker``: code execution if it ever runs."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "strainer_fast/generalizable/1", "kind": "ipc",
                "x": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_generalizable(path)
    assert not marker.exists()


def test_compare_methods(slices):
    assert parse_methods("siren,transinr,transinr-tto,ipc,ipc-tto") == [
        "siren", *GEN_METHODS]
    test = slices[30:32]
    models = {"transinr": tiny("transinr"), "ipc": tiny("ipc")}
    res = sf.compare(slices[:1], test, ["siren", *GEN_METHODS], generalizable=models,
                     width=16, layers=4, steps=10, log_every=5, progress=False,
                     verbose=False)
    assert set(res) == {"siren", *GEN_METHODS}
    assert res["ipc"].step == [0] and res["ipc-tto"].step == [0, 5, 10]
    assert res["ipc-tto"].psnr[0] == pytest.approx(res["ipc"].psnr[0], abs=1e-4)


def test_bad_input(slices, tmp_path):
    model = tiny("transinr")
    with pytest.raises(ValueError, match=r"images must be \[B, 16, 16, 1\]"):
        model(torch.rand(2, 32, 32, 1))
    with pytest.raises(ValueError, match=r"images must be \[B, 16, 16, 1\]"):
        fit_generalizable(torch.rand(2, 16, 16, 3), model, tto=False)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_model("siren", **TINY)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        make_model("transinr", **TINY, groups=3)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        make_model("ipc", **TINY, rank=0)
    with pytest.raises(ValueError, match="modulated must be a sine layer"):
        make_model("ipc", **TINY, modulated=3)
    with pytest.raises(ValueError, match="patch must divide"):
        make_model("ipc", **dict(TINY, patch=5))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_generalizable("ipc", slices[:2], **TINY, steps=0)
    with pytest.raises(ValueError, match="images are 16 px but size=32"):
        train_generalizable("ipc", slices[:2], **dict(TINY, size=32))
    with pytest.raises(ValueError, match="KIND=PATH"):
        parse_checkpoints("siren=a.pt")
    assert parse_checkpoints("transinr=a.pt, ipc=b.pt") == {"transinr": "a.pt",
                                                             "ipc": "b.pt"}
    with pytest.raises(ValueError, match="3 channels"):
        sf.compare(slices[:1].expand(-1, -1, -1, 3), torch.rand(1, 16, 16, 3), ["transinr"],
                   steps=1, progress=False)
    with pytest.raises(ValueError, match="does not fit"):
        sf.compare(slices[:1], slices[:1], ["ipc"], generalizable={"ipc": tiny("ipc")},
                   width=32, layers=4, steps=1, progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("transinr-ff")


def test_cli_train_and_compare(tmp_path, slices):
    out = tmp_path / "ipc.pt"
    args = ["generalizable", "train", "--kind", "ipc", "--out", str(out), "--size", "16",
            "--width", "16", "--layers", "4", "--dim", "32", "--depth", "1", "--heads", "2",
            "--rank", "4", "--steps", "2", "--batch", "2", "--no-progress"]
    assert main(args) == 0
    assert load_generalizable(out).config["rank"] == 4
    again = tmp_path / "again.pt"
    assert main(["run", str(tmp_path / "ipc.config.json"), "--out", str(again)]) == 0
    for (k, a), (_, b) in zip(load_generalizable(out).state_dict().items(),
                              load_generalizable(again).state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    from PIL import Image
    Image.fromarray((slices[30, ..., 0].numpy() * 255).astype("uint8")).save(
        test_dir / "a.png")
    assert main(["compare", "--train", str(test_dir), "--test", str(test_dir), "--out",
                 str(tmp_path / "cmp"), "--methods", "ipc,ipc-tto", "--size", "16",
                 "--width", "16", "--layers", "4", "--steps", "2", "--log-every", "1",
                 "--gen-checkpoints", f"ipc={out}", "--no-progress"]) == 0
    assert (tmp_path / "cmp" / "metrics.json").is_file()
    assert main(["compare", "--train", str(test_dir), "--test", str(test_dir), "--out",
                 str(tmp_path / "cmp2"), "--methods", "transinr", "--size", "16",
                 "--gen-checkpoints", f"transinr={out}", "--no-progress"]) == 2
