"""Planned network passes of every reproduction item: the budget arithmetic of a preset,
derived from the config keys each item script reads (counts only, nothing is run).

Unit: one *pass* ("image-step") = forward + backward + Adam of one network of the preset
(``width``, ``layers``) on one ``size`` x ``size`` image: what ``pass_cost.py`` times, so
minutes = passes x a measured pass cost (``estimate_minutes``). Cost model (it counts the
width x width matrix products of the hidden layers, which dominate at the preset's widths;
the thin first / last layers and the sines are left out, so it understates what narrow
networks cost relative to wide ones: convert with a pass measured at the width in question):

- a step of one network of width w, L layers, on P points (pixels, voxel centres) costs
  ``P w^2 (L - 2) / (size^2 width^2 (layers - 2))`` passes (items at other sides and widths
  scale by points x width^2);
- ``fit_many`` of K images: K networks a step; at every log point (step 0, every
  ``log_every`` steps, the last step, and the re-measure of the kept weights) a forward-only
  render of the full grid per image, counted as ``EVAL`` of a pass (a backward costs about
  two forwards);
- a STRAINER-N pretraining step (``common.pretrained``: one model whose shared encoder runs
  once on the shared coordinate grid, the N decoders on its features) costs
  ``((shared - 1) + N (L - 1 - shared)) / (L - 2)`` networks: 1 for shared = L - 1 whatever
  N, N for shared = 1;
- a meta-learning outer step (``meta_init`` on S images, all adapted copies at once):
  (inner + 1) x S passes for fomaml / maml (maml's second-order graph on the reference ops
  costs more: a lower bound), inner x S passes + S forwards for reptile; while
  ``meta_steps`` is unset (``[tuned]``), the largest count ``validate.py --part meta`` can
  choose (``[choices].meta_checkpoints``), an upper bound;
- TransINR / IPC training, counted for ``gen_max_steps`` steps (the most it runs; the stop
  rule may end it earlier): a step is ``gen_batch`` hyponet passes plus the transformer's
  multiply-adds over those of a pass, T x depth x (8 dim^2 + 2 T dim) per image for T
  tokens (patches and weight tokens; attention projections, MLP of width 2 dim, attention;
  the tokenizer and the weight heads left out); each validation check (step 0, every
  ``gen_check_every`` steps) and the final validation PSNR is a feed-forward prediction of
  the 2 validation slices (hyponet render only); test-time optimisation from their
  prediction: a fit;
- work that ``common.pretrained`` / ``common.cached`` memoise (keys shared by items in one
  run, encoders on disk across runs) is counted once, in the first item (run order) that
  needs it. Resuming a run in a new process re-does the in-memory fits, not the encoders.

``python benchmarks/repro/budget.py [--preset cpu] [--set width=64] [--pass-ms 40]``
prints the passes per item (and minutes at ``--pass-ms`` ms a pass), and those of
``validate.py --part meta`` (not part of the preset's total).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

import common
import fig12_occupancy
import run_all
import table2_ood
from strainer_fast.data import default_split, validation_split
from strainer_fast.generalizable import make_model
from strainer_fast.stability import STABILIZE
from strainer_fast.tasks.occupancy import chairs_dir, shape_files

EVAL = 1 / 3  # a forward-only render, as a fraction of a pass
MRI = "in-domain train"  # the memo label of the MRI training slices (common.pretrained)


def step_cost(cfg: dict, points: float, width: int | None = None,
              layers: int | None = None) -> float:
    """Passes (preset units) of one network's step on ``points`` points."""
    width, layers = width or cfg["width"], layers or cfg["layers"]
    return (points * width ** 2 * (layers - 2)
            / (cfg["size"] ** 2 * cfg["width"] ** 2 * (cfg["layers"] - 2)))


def log_points(steps: int, log_every: int) -> int:
    """Metric renders of a fit: step 0, every ``log_every`` (0: none between), the last step,
    and the re-measure of the weights ``keep="best"`` returns."""
    if steps == 0:
        return 1
    every = log_every or steps
    return 1 + steps // every + (steps % every > 0) + 1


def fit_cost(cfg: dict, k: int, points: float, steps: int, log_every: int,
             width: int | None = None, layers: int | None = None,
             eval_points: float | None = None) -> float:
    """Passes of fitting ``k`` networks for ``steps`` steps on ``points`` points each, with
    metrics (a forward of ``eval_points``, default ``points``) at the log points."""
    evals = log_points(steps, log_every) * EVAL * step_cost(
        cfg, points if eval_points is None else eval_points, width, layers)
    return k * (steps * step_cost(cfg, points, width, layers) + evals)


def pretrain_cost(cfg: dict, n: int, points: float, steps: int, shared: int,
                  width: int | None = None, layers: int | None = None) -> float:
    """Passes of ``steps`` STRAINER-``n`` pretraining steps (``shared`` encoder layers)."""
    layers = layers or cfg["layers"]
    networks = ((shared - 1) + n * (layers - 1 - shared)) / (layers - 2)
    return steps * networks * step_cost(cfg, points, width, layers)


def meta_cost(cfg: dict, s: int, points: float, steps: int) -> float:
    """Passes of ``steps`` outer steps of ``cfg["meta_method"]`` on ``s`` images."""
    inner = cfg["meta_inner_steps"]
    per_task = inner + EVAL if cfg["meta_method"] == "reptile" else inner + 1
    return steps * s * per_task * step_cost(cfg, points)


def meta_steps(cfg: dict) -> int:
    """``cfg["meta_steps"]``, or while it is unset the largest count the validation rule can
    choose (the last of ``[choices].meta_checkpoints``)."""
    steps = cfg["meta_steps"]
    return max(common.PREREG["choices"]["meta_checkpoints"]) if steps == common.UNSET else steps


def meta_validation_cost(cfg: dict, tune: int, val: int) -> dict[str, float]:
    """Passes of ``validate.py --part meta`` (``tune`` tuning-train and ``val`` validation
    images at ``cfg["size"]``): meta-learning to the last checkpoint, and one fit of the
    validation images (metrics at the start and the end) from each checkpoint."""
    rule, points = common.PREREG["choices"], cfg["size"] ** 2
    checkpoints = rule["meta_checkpoints"]
    return {"meta-learning": meta_cost(cfg, tune, points, max(checkpoints)),
            "fits": len(checkpoints) * fit_cost(cfg, val, points, rule["meta_fit_steps"], 0)}


def transformer_cost(cfg: dict, kind: str) -> float:
    """Passes (preset units) of the tokenizer-fed transformer of one ``kind`` model's step on
    one ``gen_size`` image (module doc); its weight tokens counted on the model itself."""
    model = make_model(kind, size=cfg["gen_size"], width=cfg["width"], layers=cfg["layers"],
                       dim=cfg["gen_dim"], depth=cfg["gen_depth"], heads=cfg["gen_heads"],
                       patch=cfg["gen_patch"],
                       **({"groups": cfg["gen_groups"]} if kind == "transinr"
                          else {"rank": cfg["gen_rank"]}))
    tokens = (cfg["gen_size"] // cfg["gen_patch"]) ** 2 + model.tokens.shape[0]
    dim = cfg["gen_dim"]
    macs = tokens * cfg["gen_depth"] * (8 * dim ** 2 + 2 * tokens * dim)
    return macs / (cfg["size"] ** 2 * cfg["width"] ** 2 * (cfg["layers"] - 2))


def generalizable_cost(cfg: dict, kind: str, points: float, validation: int) -> float:
    """Passes of training one ``kind`` model for ``gen_max_steps`` steps on ``points``-pixel
    images, with its validation checks of ``validation`` images (module doc)."""
    steps, every = cfg["gen_max_steps"], cfg["gen_check_every"]
    checks = (1 + steps // every if every else 0) + 1  # + the final validation PSNR
    train = steps * cfg["gen_batch"] * (step_cost(cfg, points) + transformer_cost(cfg, kind))
    return train + checks * validation * EVAL * step_cost(cfg, points)


@dataclass
class Plan:
    """Passes of the items planned so far: ``items[key] = {part: passes}``; ``seen`` holds
    the memo keys already paid for."""

    cfg: dict
    items: dict[str, dict[str, float]] = field(default_factory=dict)
    seen: set = field(default_factory=set)
    item: str = ""

    def add(self, part: str, passes: float, key: tuple | None = None) -> None:
        """Charges ``passes`` to ``part`` of the current item, unless ``key`` was paid."""
        if key is not None:
            if key in self.seen:
                return
            self.seen.add(key)
        parts = self.items.setdefault(self.item, {})
        parts[part] = parts.get(part, 0.0) + passes

    def pretrain(self, data: str, shape: tuple[int, int, int, int], steps: int, shared: int,
                 seed: int, cfg: dict | None = None) -> None:
        """A ``common.pretrained`` call on images of ``shape`` [S, H, W, C] named ``data``."""
        c = cfg or self.cfg
        key = common.pretrain_key(c, data, shape, shared, steps, seed, c["width"],
                                  c["layers"])
        self.add("pretraining", pretrain_cost(c, shape[0], shape[1] * shape[2], steps, shared),
                 key)

    def fit(self, k: int, side: int, steps: int, log_every: int, width: int | None = None,
            key: tuple | None = None) -> None:
        """A ``fit_many`` of ``k`` images of ``side`` px (full grid)."""
        self.add("fits", fit_cost(self.cfg, k, side ** 2, steps, log_every, width), key)


def counts(cfg: dict) -> dict[str, int]:
    """Image counts of the data sets the items use (embedded MRI split and its validation
    slices, photos, chairs)."""
    train, test = default_split()
    return dict(mri_train=len(train), mri_test=len(test), val=len(validation_split()[1]),
                gray=len(common.NATURAL_TRAIN_GRAY),
                rgb=len(common.NATURAL_TRAIN_RGB),
                natural=min(cfg["natural_test_images"], len(common.NATURAL_TEST)),
                test=min(cfg["test_images"], len(test)), chairs=len(shape_files(chairs_dir())))


def _fig2(p: Plan, c: dict, n: dict) -> None:
    side, steps, log = c["size"], c["steps"], c["log_every"]
    enc = (min(10, n["mri_train"]), side, side, 1)
    for i, seed in enumerate(c["seeds"]):
        p.pretrain(MRI, enc, c["pretrain_steps"], c["shared"], seed)
        for _ in ("siren", "strainer-10", "control"):
            p.fit(n["test"], side, steps, log)
        if i:
            continue
        p.pretrain(MRI, (1, side, side, 1), c["pretrain_steps"], c["shared"], seed)
        p.fit(n["test"], side, steps, log)  # strainer-1
        p.add("siren-ft init", fit_cost(c, 1, side ** 2, steps, 0))
        p.fit(n["test"], side, steps, log)  # siren-ft
        p.add("meta-learning", meta_cost(c, n["mri_train"], side ** 2, meta_steps(c)))
        p.fit(n["test"], side, steps, log)  # meta
    c2 = dict(c, value_range=c["second_value_range"])
    for seed in c["second_seeds"]:
        p.pretrain(MRI, enc, c["pretrain_steps"], c["shared"], seed, cfg=c2)
        for _ in ("siren", "strainer-10"):
            p.fit(n["test"], side, steps, log)


def _table2_encoders(p: Plan, c: dict, n: dict) -> list[tuple[str, int]]:
    """Plans ``table2_ood.encoders``; (name, channels) of each."""
    side = c["small_size"]
    sets = (("strainer-10 (MRI, gray)", MRI if not c.get("train") else "MRI train",
             n["mri_train"], 1), ("strainer-10 (photos, gray)", "photos gray", n["gray"], 1),
            (f"strainer-{n['rgb']} (photos, colour)", "photos colour", n["rgb"], 3))
    for _, data, count, channels in sets:
        p.pretrain(data, (count, side, side, channels), c["natural_pretrain_steps"],
                   c["shared"], c["seed"])
    return [(name, channels) for name, _, _, channels in sets]


def _table2_fit(p: Plan, c: dict, mode: str, shape: tuple[int, int, int, int], method: str,
                width: int | None = None) -> None:
    """Plans ``table2_ood.fitted`` (memoised)."""
    p.fit(shape[0], shape[1], c["natural_steps"], c["log_every"], width,
          key=table2_ood.fit_key(c, mode, shape, method, width))


def _table2(p: Plan, c: dict, n: dict) -> None:
    encs, side = _table2_encoders(p, c, n), c["small_size"]
    for mode, k, channels in (("photos, colour", n["natural"], 3),
                              ("photos, gray", n["natural"], 1),
                              ("MRI test slices", n["test"], 1)):
        shape = (k, side, side, channels)
        _table2_fit(p, c, mode, shape, "siren")
        for name, enc_channels in encs:
            if table2_ood.uses(mode, channels, name, enc_channels):
                _table2_fit(p, c, mode, shape, name)


def _table4(p: Plan, c: dict, n: dict) -> None:
    shape = (n["natural"], c["small_size"], c["small_size"], 3)
    for width in c["capacity_widths"]:
        _table2_fit(p, c, "photos, colour", shape, "siren", width)
    for name, _ in _table2_encoders(p, c, n):
        if "photos" in name:
            _table2_fit(p, c, "photos, colour", shape, name)


def _table6(p: Plan, c: dict, n: dict) -> None:
    side = c["task_size"]
    p.pretrain(MRI, (min(10, n["mri_train"]), side, side, 1), c["task_pretrain_steps"],
               c["shared"], c["seed"])
    for _ in range(4):  # (super-resolution, denoising) x (siren, strainer)
        p.fit(n["test"], side, c["task_steps"], c["log_every"])


def _table5(p: Plan, c: dict, n: dict) -> None:
    side = c["small_size"]
    p.pretrain(MRI, (min(10, n["mri_train"]), side, side, 1), max(c["cost_budgets"]),
               c["shared"], c["seed"])
    for _ in c["cost_budgets"]:
        p.fit(n["test"], side, c["cost_fit_steps"], 0)
    for budget in c["cost_meta_budgets"]:
        p.add("meta-learning", meta_cost(c, n["mri_train"], side ** 2, budget))
        p.fit(n["test"], side, c["cost_fit_steps"], 0)


def _fig7(p: Plan, c: dict, n: dict) -> None:
    side = c["small_size"]
    for shared in c["ablation_shared"]:
        p.pretrain(MRI, (min(10, n["mri_train"]), side, side, 1), c["ablation_pretrain_steps"],
                   shared, c["seed"])
        p.fit(n["test"], side, c["ablation_steps"], c["log_every"])


def _fig3(p: Plan, c: dict, n: dict) -> None:
    side = c["size"]
    p.pretrain(MRI, (min(10, n["mri_train"]), side, side, 1), c["pretrain_steps"], c["shared"],
               c["seed"])
    steps = c["feature_steps"]
    for _ in ("siren", "strainer-10"):
        p.fit(1, side, max(steps), int(np.gcd.reduce(steps)) or 1)


def _fig4(p: Plan, c: dict, n: dict) -> None:
    side = c["size"]
    p.pretrain(MRI, (min(10, n["mri_train"]), side, side, 1), c["pretrain_steps"], c["shared"],
               c["seed"])
    for _ in ("siren", "strainer-10"):
        p.fit(n["test"], side, c["grad_steps"], 0)


def _fig12(p: Plan, c: dict, n: dict) -> None:
    width, layers = c["occupancy_width"], c["occupancy_layers"]
    points, res, steps = c["occupancy_points"], c["occupancy_res"], c["occupancy_steps"]
    p.add("pretraining", pretrain_cost(c, n["chairs"], points, c["occupancy_pretrain_steps"],
                                       c["occupancy_shared"], width, layers))
    every = fig12_occupancy.eval_every(c)
    for _ in ("siren", "strainer"):
        p.add("fits", fit_cost(c, 1, points, steps, every, width, layers, eval_points=res ** 3))


def _stability(p: Plan, c: dict, n: dict) -> None:
    side = c["small_size"]
    p.pretrain("photos gray", (n["gray"], side, side, 1), c["natural_pretrain_steps"],
               c["shared"], c["seed"])
    k = min(c["stab_images"], len(common.NATURAL_TEST))
    for _ in range(2 * len(STABILIZE)):  # (siren, strainer-10) x every mode
        p.fit(k, side, c["stab_steps"], 0)


def _table3(p: Plan, c: dict, n: dict) -> None:
    side, steps = c["gen_size"], c["gen_fit_steps"]
    k = min(c["gen_test_images"], n["mri_test"])
    for kind in ("transinr", "ipc"):
        p.add("transinr / ipc training", generalizable_cost(c, kind, side ** 2, n["val"]))
    p.pretrain(MRI if not c.get("train") else "MRI train", (n["mri_train"], side, side, 1),
               c["natural_pretrain_steps"], c["shared"], c["seed"])
    fit_cfg = dict(c, natural_steps=steps)
    for method in ("siren", "strainer-10 (MRI, gray)"):
        _table2_fit(p, fit_cfg, "MRI test slices", (k, side, side, 1), method)
    for _ in ("transinr", "ipc"):
        p.fit(k, side, 0, c["log_every"])  # feed-forward prediction
        p.fit(k, side, steps, c["log_every"])  # test-time optimisation


PLANS = {"fig2": _fig2, "table2": _table2, "table4": _table4, "table6": _table6,
         "table5": _table5, "fig7": _fig7, "fig3": _fig3, "fig4": _fig4, "fig12": _fig12,
         "stability": _stability, "table3": _table3}


def planned_passes(cfg: dict) -> dict[str, dict]:
    """Per item of ``run_all.ITEMS`` (run order): ``{"passes": total, "parts": {what:
    passes}}`` in passes of the preset's network on one ``cfg["size"]`` image (module doc),
    for an uninterrupted run with empty caches."""
    missing = set(run_all.ITEMS) - set(PLANS)
    if missing:
        raise ValueError(f"budget.py has no plan for items {sorted(missing)}")
    plan, n = Plan(cfg), counts(cfg)
    for key in run_all.ITEMS:
        plan.item = key
        plan.items[key] = {}
        PLANS[key](plan, cfg, n)
    return {key: dict(passes=sum(parts.values()), parts=parts)
            for key, parts in plan.items.items()}


def estimate_minutes(cfg: dict, pass_ms: float) -> float:
    """Estimated minutes of the whole preset at ``pass_ms`` ms per pass (measured at
    ``cfg["size"]`` and ``cfg["width"]``, e.g. ``pass_cost.measure_pass``)."""
    if not (math.isfinite(pass_ms) and pass_ms > 0):
        raise ValueError(f"pass_ms must be a positive number, got {pass_ms}")
    return sum(r["passes"] for r in planned_passes(cfg).values()) * pass_ms / 60e3


def main() -> None:
    def extra(p) -> None:
        p.add_argument("--pass-ms", type=float, help="measured ms per pass at the preset's "
                       "size and width (pass_cost.py): also print minutes")

    cfg, _, args = common.parse(__doc__.splitlines()[0], extra=extra)
    try:
        common.check_tuned(cfg, allow=("meta_steps",))
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    plan = planned_passes(cfg)
    print(f"preset {cfg['preset']}: passes of one width-{cfg['width']}, {cfg['layers']}-layer "
          f"network on one {cfg['size']}px image"
          + (f"; meta_steps unset: counted at {meta_steps(cfg)}, the most validation can "
             "choose" if cfg["meta_steps"] == common.UNSET else ""))
    for key, r in plan.items():
        parts = ", ".join(f"{k} {v:,.0f}" for k, v in r["parts"].items())
        mins = f"  {r['passes'] * args.pass_ms / 60e3:6.1f} min" if args.pass_ms else ""
        print(f"{key:10s} {r['passes']:10,.0f}{mins}  ({parts})")
    total = sum(r["passes"] for r in plan.values())
    print(f"{'total':10s} {total:10,.0f}"
          + (f"  {estimate_minutes(cfg, args.pass_ms):6.1f} min" if args.pass_ms else ""))
    tune, val = (len(x) for x in validation_split())
    parts = meta_validation_cost(cfg, tune, val)
    passes = sum(parts.values())
    print(f"validate.py --part meta (not in the total): {passes:,.0f}"
          + (f"  {passes * args.pass_ms / 60e3:.1f} min" if args.pass_ms else "") + "  ("
          + ", ".join(f"{k} {v:,.0f}" for k, v in parts.items()) + ")")


if __name__ == "__main__":
    main()
