"""Models, every init of ``fit``, batched ``fit_many`` vs independent fits, pretraining."""

from __future__ import annotations

import math

import pytest
import torch

from strainer_fast.data import coord_grid
from strainer_fast.fit import fit, fit_many, siren_ft_init
from strainer_fast.meta import meta_init
from strainer_fast.models import Siren, Strainer
from strainer_fast.pretrain import pretrain

NET = dict(width=32, layers=3, w0=30.0)


def _images(k=3, size=12, c=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.linspace(0, 1, size)
    base = torch.sin(6 * xs[:, None] + 4 * xs[None, :])[..., None].repeat(1, 1, c)
    return torch.stack([((base + 0.2 * i + 0.1 * torch.rand(size, size, c, generator=g))
                         .clamp(-1, 1) + 1) / 2 for i in range(k)])


def test_siren_init_bounds_and_shapes():
    m = Siren(2, 3, width=64, layers=4, w0=30.0)
    assert m(coord_grid(4, 4)).shape == (16, 3)
    w = list(m.weights)
    assert w[0].abs().max() <= 1 / 2 and w[0].abs().max() > 0.4
    bound = math.sqrt(6 / 64) / 30
    assert w[1].abs().max() <= bound and w[1].abs().max() > 0.9 * bound
    assert m.biases[1].abs().max() <= 1 / 8


def test_strainer_encoder_shared_and_matches_siren():
    m = Strainer(4, out_features=2, width=16, layers=3, shared=2, seed=1)
    x = coord_grid(5, 5)
    out = m(x)
    assert out.shape == (4, 25, 2)
    assert m.enc_w[0].shape == (16, 2) and m.dec_w[0].shape == (4, 2, 16)
    s = Siren(2, 2, width=16, layers=3)
    with torch.no_grad():
        for p, (w, b) in zip([*zip(s.weights, s.biases)], m.network_layers(2)):
            p[0].copy_(w)
            p[1].copy_(b)
        assert torch.allclose(s(x), out[2], atol=1e-5)
    with pytest.raises(ValueError, match="shared"):
        Strainer(2, layers=3, shared=3)


def test_fit_siren_improves_and_logs():
    img = _images(1)[0]
    r = fit(img, "siren", steps=30, log_every=10, lr=1e-3, progress=False, **NET)
    assert r.step == [0, 10, 20, 30] and len(r.wall_s) == 4 and len(r.ssim) == 4
    assert r.psnr[-1][0] > r.psnr[0][0] + 5
    assert r.recon.shape == (1, 12, 12, 1)
    assert r.wall_s == sorted(r.wall_s)


def test_fit_many_equals_independent_fits():
    imgs = _images(3)
    kw = dict(steps=15, log_every=5, lr=1e-3, progress=False, **NET)
    many = fit_many(imgs, "siren", seed=4, **kw)
    for k in range(3):
        one = fit(imgs[k], "siren", seed=4 + k, **kw)
        assert one.psnr[0][0] == pytest.approx(many.psnr[0][k], abs=1e-4)  # same init
        assert one.psnr[-1][0] == pytest.approx(many.psnr[-1][k], abs=1e-2)
        for (w1, _), (wk, _) in zip(one.model.network_layers(0), many.model.network_layers(k)):
            assert torch.allclose(w1, wk, atol=1e-5)


def test_fit_is_reproducible():
    img = _images(1)[0]
    a = fit(img, "siren", steps=5, seed=3, progress=False, **NET)
    b = fit(img, "siren", steps=5, seed=3, progress=False, **NET)
    assert a.psnr == b.psnr


def test_siren_ft_init_reuses_all_weights():
    imgs = _images(2)
    weights = siren_ft_init(imgs[0], steps=20, lr=1e-3, progress=False, **NET)
    assert len(weights) == 3
    r = fit(imgs[1], "siren-ft", init_weights=weights, steps=0, progress=False, **NET)
    for (w, b), (w2, b2) in zip(weights, r.model.network_layers(0)):
        assert torch.equal(w, w2) and torch.equal(b, b2)
    plain = fit(imgs[1], "siren", steps=0, progress=False, **NET)
    assert r.psnr[0][0] > plain.psnr[0][0]  # the fitted init already resembles the image
    with pytest.raises(ValueError, match="needs init_weights"):
        fit(imgs[1], "siren-ft", progress=False, **NET)
    with pytest.raises(ValueError, match="init must be one of"):
        fit(imgs[1], "bogus", progress=False)


@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile"])
def test_meta_init(method):
    imgs = _images(3)
    base = Strainer(1, width=32, layers=3, shared=0, seed=0).network_layers(0)
    weights = meta_init(imgs, method, steps=6, inner_steps=2, lr=1e-3, progress=False, **NET)
    assert [w.shape for w, _ in weights] == [w.shape for w, _ in base]
    assert any(not torch.equal(w, w0) for (w, _), (w0, _) in zip(weights, base))
    r = fit(imgs[0], "meta", init_weights=weights, steps=5, progress=False, **NET)
    assert len(r.psnr) == 2 and all(math.isfinite(p) for p in r.psnr[-1])
    with pytest.raises(ValueError, match="meta method"):
        meta_init(imgs, "maml2", steps=1, progress=False)


def test_maml_is_second_order():
    """With no inner step MAML and first-order MAML take the same outer steps; with inner
    steps the second-order term makes them differ."""
    imgs = _images(2)
    kw = dict(steps=3, lr=1e-3, progress=False, **NET)
    maml0 = meta_init(imgs, "maml", inner_steps=0, **kw)
    fo0 = meta_init(imgs, "fomaml", inner_steps=0, **kw)
    for (w, b), (w2, b2) in zip(maml0, fo0):
        torch.testing.assert_close(w, w2, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b, b2, atol=1e-5, rtol=1e-4)
    maml = meta_init(imgs, "maml", inner_steps=2, inner_lr=1e-1, **kw)
    fo = meta_init(imgs, "fomaml", inner_steps=2, inner_lr=1e-1, **kw)
    assert max((w - w2).abs().max().item() for (w, _), (w2, _) in zip(maml, fo)) > 1e-5


def test_strainer_pretrain_and_init():
    imgs = _images(4)
    model = pretrain(imgs[:3], width=32, layers=3, shared=2, steps=40, lr=1e-3, progress=False)
    enc = model.encoder_layers()
    assert len(enc) == 2 and model.signals == 3
    start = fit_many(imgs[3:], "strainer", init_weights=enc, layers=3, steps=0, progress=False)
    for (w, _), (w2, _) in zip(enc, start.model.network_layers(0)[:2]):
        assert torch.equal(w, w2)  # the pretrained encoder is the init
    r = fit_many(imgs[3:], "strainer", init_weights=enc, layers=3, steps=10, lr=1e-3,
                 progress=False)
    assert not torch.equal(enc[0][0], r.model.network_layers(0)[0][0])  # all weights train
    assert r.psnr[-1][0] > r.psnr[0][0]
    with pytest.raises(ValueError, match="layers must exceed"):
        fit_many(imgs[3:], "strainer", init_weights=enc, layers=2, progress=False)


def test_rgb_and_wrong_channels():
    imgs = _images(2, c=3)
    r = fit_many(imgs, "siren", steps=2, progress=False, **NET)
    assert r.recon.shape == (2, 12, 12, 3)
    weights = r.model.network_layers(0)
    with pytest.raises(ValueError, match="channels"):
        fit(_images(1)[0], "meta", init_weights=weights, progress=False, **NET)


def test_strainer_transfer_learning_rates():
    """transfer_lr = (encoder, decoder) multipliers: 0 freezes the pretrained encoder."""
    imgs = _images(3)
    enc = pretrain(imgs[:2], width=32, layers=3, shared=2, steps=5, lr=1e-3,
                   progress=False).encoder_layers()
    kw = dict(init_weights=enc, layers=3, steps=5, lr=1e-3, progress=False)
    frozen = fit_many(imgs[2:], "strainer", transfer_lr=(0.0, 10.0), **kw).model
    moved = fit_many(imgs[2:], "strainer", **kw).model
    for (w, b), (w2, b2) in zip(enc, frozen.network_layers(0)[:2]):
        assert torch.equal(w, w2) and torch.equal(b, b2)
    assert not torch.equal(enc[0][0], moved.network_layers(0)[0][0])
    start = fit_many(imgs[2:], "strainer", transfer_lr=(0.0, 10.0), **dict(kw, steps=0)).model
    assert not torch.equal(start.dec_w[2], frozen.dec_w[2])  # the decoder still trains
    with pytest.raises(ValueError, match="init 'strainer' only"):
        fit_many(imgs[2:], "siren", transfer_lr=(0.1, 1.0), steps=1, progress=False, **NET)
    with pytest.raises(ValueError, match="finite multipliers"):
        fit_many(imgs[2:], "strainer", transfer_lr=(-1.0, 1.0), **kw)


def test_library_calls_leave_the_global_rng_alone():
    """Every call draws from its own torch.Generator (seeded by ``seed``), never the global
    RNG: the global state is unchanged and a global reseed changes no result."""
    imgs = _images(3)
    state = torch.get_rng_state()
    model = pretrain(imgs[:2], width=16, layers=3, shared=2, steps=3, progress=False)
    a = fit_many(imgs[2:], model.encoder(), steps=3, log_every=1, progress=False)
    meta_init(imgs, "reptile", steps=2, inner_steps=1, progress=False, **dict(NET, width=16))
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(1234)
    b = fit_many(imgs[2:], model.encoder(), steps=3, log_every=1, progress=False)
    assert a.psnr == b.psnr
