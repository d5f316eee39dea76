"""The one report writer: ``metrics.json`` + ``report.md`` (+ plots) of every command.

``write_outputs`` writes the common part (title, device, versions, resolved config, a
table, notes); ``write_report`` is the image-fitting report on top of it (reconstructions,
PSNR curves, LPIPS).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._version import __version__
from .fit import FitResult
from .lpips import lpips

__all__ = ["method_metrics", "plot_curves", "plot_overview", "pyplot", "write_outputs",
           "write_report"]


def pyplot():
    """matplotlib.pyplot with the file backend, imported on first use (keeps
    ``import strainer_fast`` light)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def method_metrics(result: FitResult, names: list[str]) -> dict:
    """JSON-ready curves of one method: means over images and per-image curves."""
    return {
        "step": list(result.step),
        "psnr": [float(np.mean(v)) for v in result.psnr],
        "ssim": [float(np.mean(v)) for v in result.ssim],
        "wall_s": list(result.wall_s),
        "per_signal": {name: {"psnr": [v[i] for v in result.psnr],
                              "ssim": [v[i] for v in result.ssim]}
                       for i, name in enumerate(names)},
    }


def _plain(config: Any) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def _flat(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out += _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}={v}"]
    return out


def write_outputs(out: str | Path, *, title: str, config: Any, device: str, metrics: dict,
                  table: list[str] = (), notes: str = "", files: str = "") -> dict:
    """Writes ``out``/metrics.json ({title, config, device, versions, **metrics}) and
    ``out``/report.md (title, device, config, ``table`` lines, ``notes``, ``files``).
    Returns the metrics dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"title": title, "config": _plain(config), "device": device,
            "versions": {"strainer_fast": __version__, "torch": torch.__version__,
                         "python": platform.python_version(), "numpy": np.__version__},
            **metrics}
    (out / "metrics.json").write_text(json.dumps(data, indent=1))
    lines = [f"# {title}", "",
             f"Device: {device}; strainer_fast {__version__}, torch {torch.__version__}.", "",
             "Config: " + ", ".join(_flat(data["config"])), "", *table]
    if notes:
        lines += ["", notes]
    if files:
        lines += ["", f"Files: {files}"]
    (out / "report.md").write_text("\n".join(lines + [""]))
    return data


def _at_step(curve: dict, step: int) -> float | None:
    return curve["psnr"][curve["step"].index(step)] if step in curve["step"] else None


def write_report(
    out: str | Path,
    results: dict[str, FitResult],
    images: torch.Tensor,
    names: list[str],
    config: Any,
    *,
    device: str,
    title: str = "STRAINER comparison",
    notes: str = "",
    compare_step: int = 100,
    summary: dict | None = None,
    extra_config: dict | None = None,
) -> dict:
    """Image-fitting report: ``out``/{reconstructions.png, psnr.png, metrics.json,
    report.md}.

    images: the test images [K, H, W, C] in [0, 1]; results: method -> fit of all of them;
    config: the job's config (dataclass or dict; ``extra_config`` is added to it);
    ``summary``: extra task figures stored under metrics.json's "summary".
    Returns the metrics dict written to metrics.json.
    """
    out = Path(out)
    metrics: dict = {"test_signals": names,
                     "methods": {m: method_metrics(r, names) for m, r in results.items()}}
    if summary:
        metrics["summary"] = summary
    _add_lpips(metrics, results, images)
    methods = metrics["methods"]
    table = [f"Mean over {len(names)} test images.", "",
             f"| method | PSNR @ step {compare_step} (dB) | final PSNR (dB) | final SSIM "
             "| fit wall time (s) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, m in methods.items():
        early = _at_step(m, compare_step)
        table.append(f"| {name} | {'-' if early is None else f'{early:.2f}'} | "
                     f"{m['psnr'][-1]:.2f} | {m['ssim'][-1]:.4f} | {m['wall_s'][-1]:.1f} |")
    lpips_final = {n: m["lpips_final"] for n, m in methods.items() if "lpips_final" in m}
    table += ["", "LPIPS (final, mean): " + ", ".join(f"{n} {v:.4f}"
                                                      for n, v in lpips_final.items())
              if lpips_final else f"LPIPS: {metrics['lpips']}."]
    data = write_outputs(out, title=title, config=dict(_plain(config), **(extra_config or {})),
                         device=device, metrics=metrics, table=table, notes=notes,
                         files="`reconstructions.png`, `psnr.png`, `metrics.json`, "
                               "`config.json` (re-run: `strainer-fast run config.json`).")
    plot_curves(methods, out / "psnr.png", title)
    _plot_recons(results, images, names, out / "reconstructions.png")
    return data


def _add_lpips(metrics: dict, results: dict[str, FitResult], images: torch.Tensor) -> None:
    """Final LPIPS per method (mean over images) when its weights are on disk; else the reason."""
    k = images.shape[0]
    try:  # one call for all methods: the weights are read from disk once
        dist = lpips(torch.cat([r.recon for r in results.values()]),
                     images.cpu().repeat(len(results), 1, 1, 1))
        for i, m in enumerate(results):
            metrics["methods"][m]["lpips_final"] = float(dist[i * k:(i + 1) * k].mean())
        metrics["lpips"] = "AlexNet LPIPS v0.1 of the final reconstructions (lower is better)"
    except (FileNotFoundError, ValueError) as e:
        metrics["lpips"] = f"not computed: {e}"


def plot_curves(methods: dict, path: Path, title: str, key: str = "psnr",
                ylabel: str = "mean test PSNR (dB)") -> None:
    """Line plot of ``methods[name][key]`` against ``methods[name]["step"]`` to ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    _draw_curves(ax, methods, key, ylabel, title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_overview(methods: dict, results: dict[str, FitResult], images: torch.Tensor,
                  names: list[str], path: Path, title: str) -> None:
    """One PNG: the mean test PSNR curves of ``methods`` (``method_metrics`` dicts) on the
    left, the test images [K, H, W, C] in [0, 1] and each method's final reconstruction
    (with its PSNR) on the right."""
    plt = pyplot()
    k, rows = images.shape[0], 1 + len(results)
    fig = plt.figure(figsize=(4.5 + 1.3 * k, max(3.2, 1.35 * rows)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[4.5, 1.3 * k])
    _draw_curves(left.subplots(), methods, "psnr", "mean test PSNR (dB)", "PSNR while fitting")
    _draw_recons(right.subplots(rows, k, squeeze=False), results, images, names)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_curves(ax, methods: dict, key: str, ylabel: str, title: str) -> None:
    for name, m in methods.items():
        ax.plot(m["step"], m[key], marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def _plot_recons(results: dict[str, FitResult], images: torch.Tensor, names: list[str],
                 path: Path) -> None:
    plt = pyplot()
    k, rows = images.shape[0], 1 + len(results)
    fig, axes = plt.subplots(rows, k, figsize=(1.8 * k, 1.9 * rows), squeeze=False)
    _draw_recons(axes, results, images, names)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_recons(axes, results: dict[str, FitResult], images: torch.Tensor,
                 names: list[str]) -> None:
    """Row 0 the images, then one row per method (final reconstruction, PSNR in dB)."""
    rows = ["ground truth", *results]
    k = images.shape[0]
    for r, row in enumerate(rows):
        imgs = images if r == 0 else results[row].recon
        for i in range(k):
            ax = axes[r][i]
            img = imgs[i].cpu().numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[i], fontsize=7)
            else:
                ax.set_title(f"{results[row].psnr[-1][i]:.1f} dB", fontsize=7)
            if i == 0:
                ax.set_ylabel(row, fontsize=8)
