"""Paper Fig. 4: histograms of absolute gradients of layers 1, 5 and the last layer over
the first fitting steps (1000 in the paper), STRAINER-10 vs SIREN, on the test images."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import common
from strainer_fast import fit_many
from strainer_fast.train import Callback

NAME = "fig4_grad_hist"
BINS = np.linspace(-12, 0, 61)  # log10 |gradient| bin edges


def run(cfg: dict, out: Path) -> dict:
    train, _, test, _, label = common.in_domain_data(cfg)
    enc = common.pretrained(cfg, "in-domain train", train[:10], shared=cfg["shared"],
                            steps=cfg["pretrain_steps"], seed=cfg["seed"]).layers
    test = test[:cfg["test_images"]]
    layers = {"layer 1": 0, f"layer {cfg['shared']}": cfg["shared"] - 1,
              f"layer {cfg['layers']} (last)": cfg["layers"] - 1}
    steps = cfg["grad_steps"]
    hists: dict[str, dict[str, np.ndarray]] = {}
    medians: dict[str, dict[str, list[float]]] = {}
    for method, init, weights in (("siren", "siren", None), ("strainer-10", "strainer", enc)):
        hists[method] = {n: np.zeros((steps, len(BINS) - 1)) for n in layers}
        medians[method] = {n: [] for n in layers}
        counter = {n: 0 for n in layers}

        def hook(name: str):
            def record(grad: torch.Tensor) -> None:
                logs = torch.log10(grad.detach().abs().flatten().clamp_min(1e-30)).cpu().numpy()
                i = counter[name]
                hists[method][name][i] = np.histogram(logs, BINS)[0]
                medians[method][name].append(float(np.median(logs)))
                counter[name] = i + 1
            return record

        class Hooks(Callback):
            def begin(self, t) -> None:
                self.handles = [t.model.dec_w[i].register_hook(hook(n))
                                for n, i in layers.items()]

            def end(self, t) -> None:
                for h in self.handles:
                    h.remove()

        fit_many(test, init, init_weights=weights, steps=steps, lr=cfg["lr"], log_every=0,
                 callbacks=[Hooks()], desc=f"gradients {method}", **common.net(cfg),
                 **common.opts(cfg))
    tenth = max(1, steps // 10)
    data = dict(data=label, machine=common.machine(cfg), steps=steps, bins_log10=BINS.tolist(),
                median_log10_abs_grad=medians,
                decay_log10={m: {n: float(np.mean(v[-tenth:]) - np.mean(v[:tenth]))
                                 for n, v in per.items()} for m, per in medians.items()},
                config={k: cfg[k] for k in ("size", "width", "layers", "shared", "lr",
                                             "pretrain_steps", "grad_steps", "seed")})
    fig, axes = plt.subplots(2, len(layers), figsize=(4 * len(layers), 6), squeeze=False)
    for r, method in enumerate(hists):
        for c, name in enumerate(layers):
            ax = axes[r][c]
            ax.imshow(np.log1p(hists[method][name]).T, origin="lower", aspect="auto",
                      extent=(0, steps, BINS[0], BINS[-1]), cmap="viridis")
            ax.plot(np.arange(steps), medians[method][name], color="w", lw=0.8)
            ax.set_title(f"{method}: {name}", fontsize=9)
            ax.set_xlabel("fitting step")
            ax.set_ylabel("log10 |gradient|")
    fig.suptitle("Histograms of |gradient| per step (colour: log count; line: median)")
    return common.finish(fig, out, NAME, data)


if __name__ == "__main__":
    common.main(run, __doc__)
