"""Weight-scaled SIREN init (Yeom et al., ICLR 2025): alpha multiplies every weight but the
last layer's (first layer included), biases untouched; alpha 1 is the SIREN init bit for bit;
the option reaches the models, ``fit_many``, ``pretrain`` and the ``fit`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import strainer_fast as sf
from strainer_fast import config
from strainer_fast.cli import COMMANDS, build_parser, config_from_args, main
from strainer_fast.fit import initial_model
from strainer_fast.models import Siren, Strainer, init_layers, layer_sizes

SIZES = layer_sizes(2, 16, 4, 3)


def draw(alpha: float, **kw) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return init_layers(SIZES, 30.0, torch.Generator().manual_seed(3), weight_scale=alpha, **kw)


def test_default_is_the_siren_init_bitwise():
    plain = init_layers(SIZES, 30.0, torch.Generator().manual_seed(3))
    for (w, b), (w1, b1) in zip(plain, draw(1.0)):
        assert torch.equal(w, w1) and torch.equal(b, b1)
    a, b = Siren(width=16, layers=4, seed=2), Siren(width=16, layers=4, seed=2, weight_scale=1.0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("alpha", [0.5, 2.5])
def test_scales_every_weight_but_the_last_layer(alpha):
    plain, scaled = draw(1.0), draw(alpha)
    for i, ((w, b), (ws, bs)) in enumerate(zip(plain, scaled)):
        assert torch.equal(bs, b), f"bias of layer {i} changed"
        if i < len(SIZES) - 1:
            assert torch.allclose(ws, w * alpha, rtol=0, atol=0), f"layer {i} not scaled"
        else:
            assert torch.equal(ws, w), "last layer must keep the SIREN init"


def test_depth_marks_the_last_layer_of_a_split_network():
    """An encoder slice (sizes without the last layer) is scaled throughout; a decoder slice
    keeps its own last layer unscaled."""
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    enc1 = init_layers(SIZES[:2], 30.0, g(), depth=4)
    enc = init_layers(SIZES[:2], 30.0, g(), weight_scale=2.0, depth=4)
    assert all(torch.equal(w * 2, ws) for (w, _), (ws, _) in zip(enc1, enc))
    dec1 = init_layers(SIZES[2:], 30.0, g(), first_index=2, batch=3)
    dec = init_layers(SIZES[2:], 30.0, g(), first_index=2, batch=3, weight_scale=2.0)
    assert torch.equal(dec[0][0], dec1[0][0] * 2) and torch.equal(dec[1][0], dec1[1][0])


def test_strainer_model_scales_encoder_and_decoder_but_not_the_last_layer():
    a = Strainer(3, width=16, layers=4, shared=2, seed=5)
    s = Strainer(3, width=16, layers=4, shared=2, seed=5, weight_scale=3.0)
    for p, q in zip([*a.enc_w, a.dec_w[0]], [*s.enc_w, s.dec_w[0]]):
        assert torch.equal(p * 3, q)
    assert torch.equal(a.dec_w[1], s.dec_w[1])
    assert all(torch.equal(p, q) for p, q in zip([*a.enc_b, *a.dec_b], [*s.enc_b, *s.dec_b]))


def test_initial_model_and_fit_many():
    plain = initial_model("siren", 2, 1, width=16, layers=3, seed=4)
    scaled = initial_model("siren", 2, 1, width=16, layers=3, seed=4, weight_scale=2.0)
    assert torch.equal(plain.dec_w[0] * 2, scaled.dec_w[0])
    assert torch.equal(plain.dec_w[1] * 2, scaled.dec_w[1])
    assert torch.equal(plain.dec_w[2], scaled.dec_w[2])
    # STRAINER init: the pretrained encoder is left alone, the fresh decoder's non-last
    # layers are scaled (none when the decoder is the last layer only)
    enc = Strainer(1, width=16, layers=4, shared=2, seed=0).encoder()
    a = initial_model(enc, 1, 1, seed=0)
    b = initial_model(enc, 1, 1, seed=0, weight_scale=2.0)
    assert torch.equal(a.dec_w[0], b.dec_w[0]) and torch.equal(a.dec_w[1], b.dec_w[1])
    assert torch.equal(a.dec_w[2] * 2, b.dec_w[2]) and torch.equal(a.dec_w[3], b.dec_w[3])
    img = torch.rand(1, 8, 8, 1, generator=torch.Generator().manual_seed(0))
    r = sf.fit(img[0], "siren", width=16, layers=3, steps=2, log_every=0, weight_scale=2.0,
               progress=False, device="cpu")
    assert len(r.train_psnr) == 2
    with pytest.raises(ValueError, match="weight_scale must be a finite number > 0"):
        sf.fit(img[0], "siren", width=16, layers=3, steps=1, weight_scale=0.0, progress=False)
    with pytest.raises(ValueError, match="weight_scale applies to random inits"):
        sf.fit(img[0], "siren-ft", init_weights=a.network_layers(0), steps=1,
               weight_scale=2.0, progress=False)


def test_pretrain_from_a_scaled_init(tmp_path):
    imgs = torch.rand(2, 8, 8, 1, generator=torch.Generator().manual_seed(1))
    kw = dict(width=8, layers=3, shared=2, steps=0, progress=False, device="cpu")
    m1 = sf.pretrain(imgs, **kw)
    m2 = sf.pretrain(imgs, weight_scale=2.0, out=tmp_path / "e.pt", **kw)
    assert torch.equal(m1.enc_w[1] * 2, m2.enc_w[1])
    assert sf.load_encoder(tmp_path / "e.pt").meta["weight_scale"] == 2.0


def test_cli_flag_config_round_trip(tmp_path):
    assert "--weight-scale" in {f"--{n}" for n, *_ in config.flat_fields(COMMANDS["fit"][0])}
    args = build_parser().parse_args(["fit", "x.png", "--init", "siren", "--out", "o",
                                      "--weight-scale", "2.5"])
    words, cfg = config_from_args(args)
    assert cfg.weight_scale == 2.5
    back = config.from_dict(COMMANDS[words][0], json.loads(json.dumps(config.to_dict(cfg))))
    assert back == cfg
    img = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(0).random((12, 12)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "fit"
    assert main(["fit", str(img), "--init", "siren", "--out", str(out), "--size", "12",
                 "--width", "8", "--layers", "3", "--steps", "2", "--weight-scale", "2.5",
                 "--no-progress", "--device", "cpu"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["weight_scale"] == 2.5
    rerun = tmp_path / "again"
    assert main(["run", str(out / "config.json"), "--out", str(rerun)]) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (out, rerun))
    assert a["methods"]["siren"]["psnr"] == b["methods"]["siren"]["psnr"]
    # a different alpha is a different fit
    other = tmp_path / "alpha1"
    assert main(["fit", str(img), "--init", "siren", "--out", str(other), "--size", "12",
                 "--width", "8", "--layers", "3", "--steps", "2", "--no-progress",
                 "--device", "cpu"]) == 0
    c = json.loads((other / "metrics.json").read_text())
    assert c["methods"]["siren"]["psnr"] != a["methods"]["siren"]["psnr"]
