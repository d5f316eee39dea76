"""Paper Fig. 3: first principal component of the encoder features (output of the 5th sine
layer) at fitting steps 0, 50, 100 for STRAINER-10 and SIREN, with the log power spectrum
of the reconstruction, on one test image."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import common
from strainer_fast import fit_many
from strainer_fast.data import coord_grid, from_output
from strainer_fast.train import Callback

NAME = "fig3_features"


def log_power(img: np.ndarray) -> np.ndarray:
    """Centred log10 power spectrum of a [H, W] image (mean removed)."""
    f = np.fft.fftshift(np.fft.fft2(img - img.mean()))
    return np.log10(np.abs(f) ** 2 + 1e-12)


def first_pc(feats: torch.Tensor) -> tuple[np.ndarray, float]:
    """First principal component scores [N] of features [N, D] and its variance share."""
    x = (feats - feats.mean(0)).double()
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    return (u[:, 0] * s[0]).cpu().numpy(), float(s[0] ** 2 / (s ** 2).sum())


def run(cfg: dict, out: Path) -> dict:
    train, _, test, test_names, label = common.in_domain_data(cfg)
    image = test[:1]
    h, w = image.shape[1:3]
    gt = image[0].mean(-1).numpy()
    coords = coord_grid(h, w)
    depth = cfg["shared"]
    enc = common.pretrained(cfg, "in-domain train", train[:10], shared=depth,
                            steps=cfg["pretrain_steps"], seed=cfg["seed"]).layers
    steps = cfg["feature_steps"]
    rows = {}
    for method, init, weights in (("siren", "siren", None), ("strainer-10", "strainer", enc)):
        snaps = {}

        class Capture(Callback):
            def log(self, t) -> None:
                if t.step in steps:
                    dev = next(t.model.parameters()).device
                    pc, share = first_pc(common.hidden_features(t.model, coords.to(dev), depth))
                    with torch.no_grad():
                        output = t.model(coords.to(dev))
                    recon = from_output(output, h, w, cfg["value_range"])[0].mean(-1)
                    recon = recon.cpu().numpy()
                    snaps[t.step] = dict(pc=pc.reshape(h, w), share=share, recon=recon)

        fit_many(image, init, init_weights=weights, steps=max(steps), lr=cfg["lr"],
                 log_every=int(np.gcd.reduce(steps)) or 1, callbacks=[Capture()],
                 desc=f"features {method}", **common.net(cfg), **common.opts(cfg))
        rows[method] = snaps
    gt_spec = log_power(gt)
    data = dict(data=label, image=test_names[0], machine=common.machine(cfg), steps=steps,
                config={k: cfg[k] for k in ("size", "width", "layers", "shared", "lr",
                                             "pretrain_steps", "seed")}, methods={})
    for method, snaps in rows.items():
        data["methods"][method] = {str(s): dict(
            pc1_variance_share=v["share"],
            pc1_abs_corr_with_image=float(abs(np.corrcoef(v["pc"].ravel(), gt.ravel())[0, 1])),
            spectrum_error=float(np.mean(np.abs(log_power(v["recon"]) - gt_spec))),
        ) for s, v in snaps.items()}
    lo, hi = np.percentile(gt_spec[gt_spec > -11], [1, 99.5])  # one colour scale, DC left out
    fig, axes = plt.subplots(2, 2 * len(steps) + 1, figsize=(2.2 * (2 * len(steps) + 1), 4.8))
    for r, (method, snaps) in enumerate(rows.items()):
        for c, s in enumerate(steps):
            axes[r][c].imshow(snaps[s]["pc"], cmap="RdBu")
            axes[r][c].set_title(f"{method} PC1, step {s}", fontsize=7)
            axes[r][len(steps) + c].imshow(log_power(snaps[s]["recon"]), cmap="magma", vmin=lo,
                                           vmax=hi)
            axes[r][len(steps) + c].set_title(f"spectrum, step {s}", fontsize=7)
        if r == 0:
            axes[r][-1].imshow(gt_spec, cmap="magma", vmin=lo, vmax=hi)
        else:
            axes[r][-1].imshow(gt, cmap="gray", vmin=0, vmax=1)
        axes[r][-1].set_title("target spectrum" if r == 0 else "target", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Encoder features (PC1) and reconstruction log power spectrum: "
                 f"{test_names[0]}", fontsize=9)
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
