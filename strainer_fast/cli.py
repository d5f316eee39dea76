"""Command line: ``strainer-fast {pretrain,fit,compare,demo,superres,denoise,occupancy}``.

Also ``python -m strainer_fast``.

Errors on bad input print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from . import distributed
from .checkpoint import load_strainer
from .data import default_split, list_images, load_images, mri_dir
from .fit import INITS, FitResult, fit_many, siren_ft_init
from .meta import META_METHODS, meta_init
from .models import resolve_device
from .pretrain import pretrain
from .report import write_report
from .resilience import TrainGuard
from .stability import STABILIZE
from .streaming import pretrain_streaming
from .tasks import TASKS

__all__ = ["main", "run_compare", "DEMO_CPU", "DEMO_GPU"]

# Demo configurations: the paper's on a GPU; on a CPU a reduced one (64x64, width 128),
# measured with `strainer-fast demo` on 2 idle cores (AMD EPYC VM): 78 s in all (3 min 15 s
# with other jobs competing for the cores), STRAINER-10 - SIREN mean test PSNR +5.1 dB at
# step 100 and +7.1 dB at step 300 (its report.md).
DEMO_GPU = dict(size=178, width=256, layers=6, shared=5, pretrain_steps=5000, steps=2000,
                log_every=100)
DEMO_CPU = dict(size=64, width=128, layers=6, shared=5, pretrain_steps=1500, steps=300,
                log_every=25)
METHODS = ("siren", "siren-ft", "meta", "meta-maml", "meta-fomaml", "meta-reptile")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda", "reference"))
    p.add_argument("--precision", default="exact", choices=("exact", "bf16"))
    p.add_argument("--gray", action="store_true", help="convert colour images to grayscale")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _reliability_args(p: argparse.ArgumentParser, where: str) -> None:
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help=f"save the training state every K steps to {where} (0: never)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue from the newest training state in {where}")


def _guard(args: argparse.Namespace, state_dir: str, **fingerprint: object) -> TrainGuard:
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    keys = ("size", "width", "layers", "shared", "w0", "lr", "seed", "gray", "precision")
    fingerprint.update({k: getattr(args, k) for k in keys if hasattr(args, k)})
    return TrainGuard.for_run(state_dir, every=args.checkpoint_every, resume=args.resume,
                              fingerprint=fingerprint)


def _model_args(p: argparse.ArgumentParser, steps: int | None, size: int | None = 178) -> None:
    p.add_argument("--size", type=int, default=size, help="image side after crop/resize (px)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--shared", type=int, default=5, help="shared encoder layers")
    p.add_argument("--w0", type=float, default=30.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=steps)


def _stabilize_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stabilize", default="off", choices=STABILIZE,
                   help="test-time fitting stabilisation (off = the paper's plain Adam; "
                        "see docs/REPRODUCTION.md)")


class _Parser(argparse.ArgumentParser):
    """Invalid flags: one error line (``--help`` shows the usage), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="strainer-fast", description="STRAINER: transferable implicit neural "
                     "representations on fused sine-MLP kernels")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a STRAINER encoder on a folder of images")
    p.add_argument("--data", required=True, help="image folder or file")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--nproc", type=int, default=1,
                   help="processes to pretrain with (signals split between them; also works "
                        "under torchrun)")
    _reliability_args(p, "OUT.state/")
    p.add_argument("--group-size", type=int, default=0, metavar="G",
                   help="stream the images in groups of G (more than fit in memory): "
                        "round-robin visits, decoders kept per image in OUT.decoders/")
    p.add_argument("--visit-steps", type=int, default=100, help="steps per group visit")
    _model_args(p, steps=5000)
    _common(p)

    p = sub.add_parser("fit", help="fit one image from an initialisation")
    p.add_argument("image")
    p.add_argument("--init", required=True, choices=INITS)
    p.add_argument("--encoder", help="STRAINER checkpoint (for --init strainer)")
    p.add_argument("--train", help="training images (for --init siren-ft / meta)")
    p.add_argument("--meta-method", default="fomaml", choices=META_METHODS)
    p.add_argument("--init-steps", type=int, default=None,
                   help="steps to make a siren-ft / meta init (default: --steps / 5000)")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--out", required=True, help="output folder")
    _reliability_args(p, "OUT/train_state/")
    _stabilize_arg(p)
    _model_args(p, steps=2000)
    _common(p)

    p = sub.add_parser("compare", help="compare initialisations on test images (paper Fig. 2)")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--methods", default="siren,siren-ft,meta,strainer-1,strainer-10",
                   help=f"comma list of {', '.join(METHODS)}, strainer-N")
    p.add_argument("--pretrain-steps", type=int, default=5000)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--out", required=True)
    _stabilize_arg(p)
    _model_args(p, steps=2000)
    _common(p)

    p = sub.add_parser("demo", help="STRAINER-10 vs SIREN on the embedded MRI slices")
    p.add_argument("--out", default="strainer_demo")
    p.add_argument("--size", type=int, help="override the device's demo config")
    p.add_argument("--steps", type=int)
    p.add_argument("--pretrain-steps", type=int)
    _common(p)
    for task in TASKS.values():
        task.add_parser(sub, _common)
    return parser


def _check_positive(**values: int | None) -> None:
    for name, v in values.items():
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


def run_compare(train: torch.Tensor, train_names: list[str], test: torch.Tensor,
                methods: list[str], cfg: dict, opts: dict) -> dict[str, FitResult]:
    """Fits all ``test`` images [K, H, W, C] from each method's init; returns method ->
    result. cfg: width, layers, shared, w0, lr, steps, pretrain_steps, log_every and
    optionally stabilize; opts: seed, device, backend, precision, progress."""
    net = dict(width=cfg["width"], layers=cfg["layers"], w0=cfg["w0"])
    fit_kw = dict(net, steps=cfg["steps"], lr=cfg["lr"], log_every=cfg["log_every"], **opts)
    results: dict[str, FitResult] = {}
    for method in methods:
        t0 = time.perf_counter()
        init, weights = method, None
        if method == "siren-ft":
            weights = siren_ft_init(train[0], **dict(fit_kw, log_every=0))
        elif method.startswith("meta"):
            init = "meta"
            weights = meta_init(train, method[5:] or "fomaml",
                                steps=cfg["pretrain_steps"], lr=cfg["lr"], **net, **opts)
        elif method.startswith("strainer-"):
            n = int(method.split("-", 1)[1])
            if n > train.shape[0]:
                raise ValueError(f"{method} needs {n} training images, got {train.shape[0]}")
            init = "strainer"
            model = pretrain(train[:n], shared=cfg["shared"], steps=cfg["pretrain_steps"],
                             lr=cfg["lr"], names=train_names[:n], **net, **opts)
            weights = model.encoder_layers()
        t_init = time.perf_counter() - t0
        results[method] = fit_many(test, init, init_weights=weights, desc=f"fit {method}",
                                   stabilize=cfg.get("stabilize", "off"), **fit_kw)
        r = results[method]
        print(f"{method}: init {t_init:.1f} s, fit {r.wall_s[-1]:.1f} s, final mean PSNR "
              f"{np.mean(r.psnr[-1]):.2f} dB", file=sys.stderr, flush=True)
    return results


def _parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    for m in methods:
        ok = m in METHODS or (m.startswith("strainer-") and m.split("-", 1)[1].isdigit()
                              and int(m.split("-", 1)[1]) >= 1)
        if not ok:
            raise ValueError(f"unknown method {m!r}; use {', '.join(METHODS)} or strainer-N")
    if not methods:
        raise ValueError("--methods is empty")
    return methods


def _opts(args: argparse.Namespace) -> dict:
    return dict(seed=args.seed, device=args.device, backend=args.backend,
                precision=args.precision, progress=not args.no_progress)


def _cfg(args: argparse.Namespace) -> dict:
    return dict(width=args.width, layers=args.layers, shared=args.shared, w0=args.w0, lr=args.lr,
                steps=args.steps, pretrain_steps=getattr(args, "pretrain_steps", None),
                log_every=getattr(args, "log_every", None), size=args.size,
                stabilize=getattr(args, "stabilize", "off"))


def cmd_pretrain(args: argparse.Namespace) -> int:
    _check_positive(size=args.size, width=args.width, layers=args.layers, steps=args.steps,
                    nproc=args.nproc)
    if args.nproc > 1 and not distributed.is_launched():
        return distributed.launch(args.nproc, args.argv)
    if args.group_size:
        return _pretrain_streaming(args)
    distributed.init_from_env(resolve_device(args.device))
    images, names, shard = distributed.load_shard(args.data, args.size, args.gray)
    guard = _guard(args, f"{args.out}.state", names=names)
    pretrain(images, width=args.width, layers=args.layers, shared=args.shared, w0=args.w0,
             steps=args.steps, lr=args.lr, out=args.out, names=names, shard=shard, guard=guard,
             **_opts(args))
    if distributed.rank_world()[0] == 0:
        print(f"wrote {args.out} (STRAINER-{len(names)}, {args.steps} steps)", file=sys.stderr)
    return 0


def _pretrain_streaming(args: argparse.Namespace) -> int:
    _check_positive(group_size=args.group_size, visit_steps=args.visit_steps)
    if args.nproc > 1 or args.checkpoint_every or args.resume:
        raise ValueError("--group-size cannot be combined with --nproc, --checkpoint-every "
                         "or --resume")
    paths = list_images(args.data)
    pretrain_streaming(paths, f"{args.out}.decoders", group_size=args.group_size,
                       visit_steps=args.visit_steps, size=args.size, gray=args.gray,
                       width=args.width, layers=args.layers, shared=args.shared, w0=args.w0,
                       steps=args.steps, lr=args.lr, out=args.out, **_opts(args))
    print(f"wrote {args.out} (STRAINER-{len(paths)} in groups of {args.group_size}, "
          f"{args.steps} steps; decoders in {args.out}.decoders)", file=sys.stderr)
    return 0


def cmd_fit(args: argparse.Namespace) -> None:
    _check_positive(size=args.size, width=args.width, layers=args.layers, steps=args.steps,
                    log_every=args.log_every)
    image, names = load_images(args.image, args.size, args.gray)
    opts = _opts(args)
    net = dict(width=args.width, layers=args.layers, w0=args.w0)
    weights = None
    if args.init == "strainer":
        if not args.encoder:
            raise ValueError("--init strainer needs --encoder ENC.pt")
        expect = dict(net, in_features=2, out_features=image.shape[-1], size=[args.size] * 2)
        weights = load_strainer(args.encoder, expect).encoder_layers()
    elif args.init in ("siren-ft", "meta"):
        if not args.train:
            raise ValueError(f"--init {args.init} needs --train DIR (training images)")
        train, _ = load_images(args.train, args.size, args.gray)
        if train.shape[-1] != image.shape[-1]:
            raise ValueError(f"training images have {train.shape[-1]} channels, "
                             f"{args.image} has {image.shape[-1]}; use --gray")
        if args.init == "siren-ft":
            weights = siren_ft_init(train[0], steps=args.init_steps or args.steps, lr=args.lr,
                                    log_every=0, **net, **opts)
        else:
            weights = meta_init(train, args.meta_method, steps=args.init_steps or 5000,
                                lr=args.lr, **net, **opts)
    guard = _guard(args, f"{args.out}/train_state", init=args.init, image=str(args.image),
                   encoder=args.encoder, train=args.train)
    result = fit_many(image, args.init, init_weights=weights, steps=args.steps, lr=args.lr,
                      log_every=args.log_every, guard=guard, stabilize=args.stabilize,
                      **net, **opts)
    cfg = dict(_cfg(args), init=args.init, image=str(args.image))
    write_report(args.out, {args.init: result}, image, names, cfg,
                 device=str(resolve_device(args.device)), title=f"fit {names[0]}")
    print(f"{names[0]}: final PSNR {result.psnr[-1][0]:.2f} dB, SSIM {result.ssim[-1][0]:.4f}; "
          f"wrote {args.out}", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> None:
    _check_positive(size=args.size, width=args.width, layers=args.layers, steps=args.steps,
                    pretrain_steps=args.pretrain_steps, log_every=args.log_every)
    methods = _parse_methods(args.methods)
    train, train_names = load_images(args.train, args.size, args.gray)
    test, test_names = load_images(args.test, args.size, args.gray)
    if train.shape[-1] != test.shape[-1]:
        raise ValueError(f"train images have {train.shape[-1]} channels, test images "
                         f"{test.shape[-1]}; use --gray")
    cfg = _cfg(args)
    results = run_compare(train, train_names, test, methods, cfg, _opts(args))
    write_report(args.out, results, test, test_names, dict(cfg, train=train_names),
                 device=str(resolve_device(args.device)))
    print(f"wrote {args.out}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    cfg = dict(DEMO_GPU if device.type == "cuda" else DEMO_CPU, w0=30.0, lr=1e-4)
    for key in ("size", "steps", "pretrain_steps"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    _check_positive(size=cfg["size"], steps=cfg["steps"], pretrain_steps=cfg["pretrain_steps"])
    cfg["log_every"] = min(cfg["log_every"], cfg["steps"])
    t0 = time.perf_counter()
    train_paths, test_paths = default_split()
    train, train_names = load_images(train_paths, cfg["size"], args.gray)
    test, test_names = load_images(test_paths, cfg["size"], args.gray)
    opts = _opts(args)
    results = run_compare(train, train_names, test, ["siren", "strainer-10"], cfg, opts)
    total = time.perf_counter() - t0
    siren, strainer = (np.mean(results[m].psnr, axis=1) for m in ("siren", "strainer-10"))
    steps = results["siren"].step
    at100 = steps.index(100) if 100 in steps else None
    gap = (f"STRAINER-10 minus SIREN, mean test PSNR: "
           + (f"{strainer[at100] - siren[at100]:+.2f} dB at step 100, " if at100 is not None
              else "")
           + f"{strainer[-1] - siren[-1]:+.2f} dB at the final step {steps[-1]}.")
    notes = (f"Data: the embedded MNI MRI slices ({mri_dir().name}), train = {len(train_names)}, "
             f"test = {len(test_names)} (README split).\n\n{gap}\n\n"
             f"Total demo wall time (pretraining + both fits + metrics): {total:.1f} s.")
    write_report(args.out, results, test, test_names, dict(cfg, seed=args.seed),
                 device=str(device), title="STRAINER-10 vs SIREN on MRI slices", notes=notes)
    print(gap, file=sys.stderr)
    print(f"demo finished in {total:.1f} s; wrote {args.out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # re-run by --nproc
    commands = {"pretrain": cmd_pretrain, "fit": cmd_fit, "compare": cmd_compare,
                "demo": cmd_demo}
    commands.update({name: lambda a, t=task: t.run(a, _opts(a)) for name, task in TASKS.items()})
    try:
        return commands[args.command](args) or 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"strainer-fast: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("strainer-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
