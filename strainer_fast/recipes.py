"""Fitting recipes: named settings of ``fit`` / ``fit_many`` (Adam learning rate, weight
scaling of the random layers, stabiliser), each chosen on the MRI validation split.

- ``"paper"``: the paper's protocol, i.e. the ``lr``, ``weight_scale`` and ``stabilize`` given
  (defaults 1e-4, 1, "off": plain Adam from the SIREN init);
- ``"fast"``: weight scale 1.5 and Adam lr 1e-3 (``benchmarks/tune_weight_scale.py``, the
  ``chosen_recipe`` of ``benchmarks/results/tune_weight_scale.json``) with the stabiliser that
  ``benchmarks/tune_stabilizer.py`` chose per init (``chosen`` in
  ``benchmarks/results/tune_stabilizer.json``; its docstring holds the pre-registered rule).
  Validated for the "siren" and "strainer" inits only; a STRAINER decoder of one layer has no
  random hidden layer to scale, so its weight scale is 1.

A test keeps these constants equal to the committed validation results.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RECIPES", "Recipe", "FAST", "apply_recipe"]

RECIPES = ("paper", "fast")


@dataclass(frozen=True)
class Recipe:
    """Adam learning rate, weight scale (alpha) of the random layers, stabiliser mode."""

    lr: float
    weight_scale: float
    stabilize: str


PAPER = Recipe(lr=1e-4, weight_scale=1.0, stabilize="off")
FAST = {"siren": Recipe(lr=1e-3, weight_scale=1.5, stabilize="wsd"),
        "strainer": Recipe(lr=1e-3, weight_scale=1.0, stabilize="decay")}


def apply_recipe(recipe: str, init: str, *, lr: float, weight_scale: float,
                 stabilize: str) -> Recipe:
    """The settings a fit from ``init`` runs with. ``"paper"`` returns the given ones;
    ``"fast"`` needs them left at the paper's defaults (it sets all three) and an init it
    was validated for."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    given = Recipe(lr=lr, weight_scale=weight_scale, stabilize=stabilize)
    if recipe == "paper":
        return given
    if init not in FAST:
        raise ValueError(f"recipe 'fast' is validated for the inits {tuple(FAST)}, not "
                         f"{init!r}; use recipe 'paper' (with your own lr) for it")
    if given != PAPER:
        raise ValueError(f"recipe 'fast' sets lr, weight_scale and stabilize itself "
                         f"({FAST[init]}); leave them at their defaults, or use recipe "
                         f"'paper' with your own values (got {given})")
    return FAST[init]
