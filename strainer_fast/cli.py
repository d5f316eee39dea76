"""Command line, generated from the job configs (``config``): one flag per config field.

``strainer-fast {pretrain,fit,compare,demo,superres,denoise,occupancy {pretrain,fit,demo},
generalizable train,run}``; also ``python -m strainer_fast``. ``run CONFIG.json`` re-runs
the job a command wrote. Errors on bad input print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import typing
from collections.abc import Callable
from typing import Any

from . import config as C
from . import jobs
from .generalizable.job import generalizable_job
from .tasks import denoise, occupancy, superres

__all__ = ["main", "build_parser", "COMMANDS"]

# command words -> (config class, job function, help)
COMMANDS: dict[str, tuple[type, Callable[[Any], None], str]] = {
    "pretrain": (C.PretrainJob, jobs.pretrain_job,
                 "pretrain a STRAINER encoder on a folder of images"),
    "fit": (C.FitJob, jobs.fit_job, "fit one image from an initialisation"),
    "compare": (C.CompareJob, jobs.compare_job,
                "compare initialisations on test images (paper Fig. 2)"),
    "demo": (C.DemoJob, jobs.demo_job, "STRAINER-10 vs SIREN on the embedded MRI slices"),
    "generalizable train": (C.GeneralizableJob, generalizable_job,
                            "train a TransINR or IPC hypernetwork on the embedded MRI slice "
                            "set"),
    "superres": (C.SuperresJob, superres.superres_job,
                 "super-resolve images through an area-downsampling operator (default: the "
                 "embedded MRI test slices)"),
    "denoise": (C.DenoiseJob, denoise.denoise_job,
                "denoise images with an INR fit (default: the embedded MRI test slices)"),
    "occupancy pretrain": (C.OccupancyPretrainJob, occupancy.pretrain_job,
                           "pretrain a 3 -> 1 STRAINER encoder on shapes"),
    "occupancy fit": (C.OccupancyFitJob, occupancy.fit_job,
                      "fit a target volume and record IoU"),
    "occupancy demo": (C.OccupancyDemoJob, occupancy.demo_job,
                       "STRAINER (chairs) vs SIREN on the embedded statue"),
}


class _Parser(argparse.ArgumentParser):
    """Invalid flags: one error line (``--help`` shows the usage), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_pair(text: str) -> tuple[float, float]:
    """'A,B' -> two finite numbers >= 0 (e.g. --strainer-lr ENC,DEC)."""
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENC,DEC multipliers, got {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in (a, b)):
        raise argparse.ArgumentTypeError(f"multipliers must be finite and >= 0, got {text!r}")
    return a, b


def _add_fields(p: argparse.ArgumentParser, cls: type) -> None:
    """One argument per leaf field of ``cls``; unset ones keep the config's default."""
    defaults = cls()
    for name, path, f, tp in C.flat_fields(cls):
        meta, dest = f.metadata, ".".join(path)
        default = C.get(defaults, path)
        hidden = default is None or isinstance(default, bool) or default == []
        shown = "" if hidden else f" (default {default})"
        kw: dict = dict(help=meta.get("help", "") + shown, default=argparse.SUPPRESS,
                        metavar=name.upper().replace("-", "_"))
        base = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        if tp is bool:
            kw["action"] = "store_false" if f.default is True else "store_true"
            del kw["metavar"]
        elif typing.get_origin(tp) is tuple:
            kw["type"] = parse_pair
        elif typing.get_origin(tp) is list:
            kw["type"] = str
        else:
            kw["type"] = base[0] if base[0] in (int, float) else str
        for key in ("choices", "metavar", "nargs", "type"):
            if key in meta:
                kw[key] = meta[key]
        if "choices" in kw:
            kw.pop("metavar", None)
        if meta.get("positional"):
            kw["metavar"] = name
            p.add_argument(dest, **kw)
        else:
            p.add_argument(f"--{name}", dest=dest, required=meta.get("required", False), **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="strainer-fast", description="STRAINER: transferable implicit neural "
                     "representations on fused sine-MLP kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, (cls, _, helptext) in COMMANDS.items():
        *head, last = words.split()
        target = sub
        if head:
            if head[0] not in groups:
                g = sub.add_parser(head[0], help=f"{head[0]} commands")
                groups[head[0]] = g.add_subparsers(dest="subcommand", required=True)
            target = groups[head[0]]
        p = target.add_parser(last, help=helptext, description=cls.__doc__.replace("``", ""))
        p.set_defaults(words=words)
        _add_fields(p, cls)
    p = sub.add_parser("run", help="re-run a job from the config.json it wrote")
    p.add_argument("config", help="config.json of an earlier run (pretrain: ENC.config.json)")
    p.add_argument("--out", help="write the outputs here instead of the config's out")
    p.set_defaults(words="run")
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[str, Any]:
    """(command words, job config) from parsed arguments."""
    if args.words == "run":
        words, data = C.read_config(args.config)
        if words not in COMMANDS:
            raise ValueError(f"{args.config}: unknown command {words!r}")
        cfg = C.from_dict(COMMANDS[words][0], data)
        if args.out:
            cfg.out = args.out
        return words, cfg
    cls = COMMANDS[args.words][0]
    cfg = cls()
    for _, path, _, _ in C.flat_fields(cls):
        dest = ".".join(path)
        if hasattr(args, dest):
            C.put(cfg, path, getattr(args, dest))
    return args.words, cfg


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        words, cfg = config_from_args(args)
        COMMANDS[words][1](cfg)
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"strainer-fast: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("strainer-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
