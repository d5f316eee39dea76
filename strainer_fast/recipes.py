"""Fitting recipes: named settings of ``fit`` / ``fit_many`` (Adam learning rate, weight
scaling of the random layers, stabiliser), each chosen on the MRI validation split, and of
``tasks.occupancy.fit_occupancy`` (Adam learning rate, stabiliser, point sampling).

Images:

- ``"paper"``: the paper's protocol, i.e. the ``lr``, ``weight_scale`` and ``stabilize`` given
  (defaults 1e-4, 1, "off": plain Adam from the SIREN init);
- ``"fast"``: weight scale 1.5 and Adam lr 1e-3 (``benchmarks/tune_weight_scale.py``, the
  ``chosen_recipe`` of ``benchmarks/results/tune_weight_scale.json``) with the stabiliser that
  ``benchmarks/tune_stabilizer.py`` chose per init (``chosen`` in
  ``benchmarks/results/tune_stabilizer.json``; its docstring holds the pre-registered rule).
  Validated for the "siren" and "strainer" inits only; a STRAINER decoder of one layer has no
  random hidden layer to scale, so its weight scale is 1.

A test keeps these constants equal to the committed validation results.

Occupancy (``occupancy_recipe``):

- ``"paper"``: the ``lr``, ``stabilize`` and ``sampling`` given (defaults 1e-4, "off",
  "surface": the library's occupancy protocol, plain Adam on batches half drawn near the
  surface, see ``tasks.occupancy.VoxelBatches``);
- ``"fast"``: per init ("siren", "strainer") the ``chosen`` settings of
  ``benchmarks/results/tune_occupancy.json``, written by ``benchmarks/tune_occupancy.py`` on one
  validation chair (its docstring holds the pre-registered grid and rule). The file is read
  when a fit asks for the recipe; while it is missing (not yet validated, or an installed
  package without the repository's ``benchmarks/``) the recipe raises ValueError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from .stability import STABILIZE

__all__ = ["RECIPES", "Recipe", "FAST", "apply_recipe", "VOXEL_SAMPLING", "OccupancyRecipe",
           "OCCUPANCY_PAPER", "OCCUPANCY_TUNED", "occupancy_fast", "occupancy_recipe"]

RECIPES = ("paper", "fast")
VOXEL_SAMPLING = ("uniform", "surface")  # tasks.occupancy.VoxelBatches
OCCUPANCY_TUNED = (Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                   / "tune_occupancy.json")


@dataclass(frozen=True)
class Recipe:
    """Adam learning rate, weight scale (alpha) of the random layers, stabiliser mode."""

    lr: float
    weight_scale: float
    stabilize: str


@dataclass(frozen=True)
class OccupancyRecipe:
    """Adam learning rate, stabiliser mode, point sampling (``VOXEL_SAMPLING``) of an
    occupancy fit."""

    lr: float
    stabilize: str
    sampling: str


PAPER = Recipe(lr=1e-4, weight_scale=1.0, stabilize="off")
FAST = {"siren": Recipe(lr=1e-3, weight_scale=1.5, stabilize="wsd"),
        "strainer": Recipe(lr=1e-3, weight_scale=1.0, stabilize="decay")}
OCCUPANCY_PAPER = OccupancyRecipe(lr=1e-4, stabilize="off", sampling="surface")

R = TypeVar("R", Recipe, OccupancyRecipe)


def _resolve(recipe: str, init: str, given: R, paper: R, fast: Callable[[], dict[str, R]]
             ) -> R:
    """``given`` for "paper"; for "fast" the settings ``fast()`` holds for ``init``, which
    needs ``given`` left at ``paper`` (the recipe sets every field)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if recipe == "paper":
        return given
    table = fast()
    if init not in table:
        raise ValueError(f"recipe 'fast' is validated for the inits {tuple(table)}, not "
                         f"{init!r}; use recipe 'paper' (with your own lr) for it")
    if given != paper:
        names = [f.name for f in fields(given)]
        raise ValueError(f"recipe 'fast' sets {', '.join(names[:-1])} and {names[-1]} itself "
                         f"({table[init]}); leave them at their defaults, or use recipe "
                         f"'paper' with your own values (got {given})")
    return table[init]


def apply_recipe(recipe: str, init: str, *, lr: float, weight_scale: float,
                 stabilize: str) -> Recipe:
    """The settings a fit from ``init`` runs with. ``"paper"`` returns the given ones;
    ``"fast"`` needs them left at the paper's defaults (it sets all three) and an init it
    was validated for."""
    return _resolve(recipe, init, Recipe(lr=lr, weight_scale=weight_scale, stabilize=stabilize),
                    PAPER, lambda: FAST)


def occupancy_fast(path: str | Path | None = None) -> dict[str, OccupancyRecipe]:
    """init -> the fast occupancy settings: ``chosen`` of the tuning result ``path``
    (default ``OCCUPANCY_TUNED``). ValueError when the file is missing or malformed."""
    path = Path(OCCUPANCY_TUNED if path is None else path)
    if not path.is_file():
        raise ValueError(f"recipe 'fast' for occupancy is not validated yet: {path} does not "
                         f"exist; run `python benchmarks/tune_occupancy.py` in a source "
                         f"checkout (it writes that file), or use recipe 'paper'")
    try:
        chosen = json.loads(path.read_text())["chosen"]
        table = {init: OccupancyRecipe(lr=float(v["lr"]), stabilize=str(v["stabilize"]),
                                       sampling=str(v["sampling"]))
                 for init, v in chosen.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a tune_occupancy.py result ({type(exc).__name__}: "
                         f"{exc})") from None
    for init, r in table.items():
        if not (math.isfinite(r.lr) and r.lr > 0) or r.stabilize not in STABILIZE \
                or r.sampling not in VOXEL_SAMPLING:
            raise ValueError(f"{path}: invalid settings for init {init!r}: {r}")
    return table


def occupancy_recipe(recipe: str, init: str, *, lr: float, stabilize: str,
                     sampling: str) -> OccupancyRecipe:
    """The settings an occupancy fit from ``init`` ("siren" or "strainer") runs with:
    ``"paper"`` returns the given ones, ``"fast"`` those of ``occupancy_fast()`` (given
    ones left at ``OCCUPANCY_PAPER``)."""
    return _resolve(recipe, init, OccupancyRecipe(lr=lr, stabilize=stabilize,
                                                  sampling=sampling),
                    OCCUPANCY_PAPER, occupancy_fast)
