"""Records the ops a piece of code dispatches (name and arguments), e.g. to check which kernel
``backend="auto"`` used, or to replay the backward op's real arguments through opcheck."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class OpRecorder(TorchDispatchMode):
    """``with OpRecorder() as rec: ...`` then ``rec.names`` / ``rec.args_of(name)``."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((str(func), args))
        return func(*args, **(kwargs or {}))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args_of(self, name: str) -> tuple:
        """The first call's arguments, tensors detached (and lists of tensors too)."""
        args = next((a for n, a in self.calls if n == name), None)
        if args is None:
            raise AssertionError(f"{name} was not dispatched; recorded: {self.names}")
        detach = lambda a: a.detach() if isinstance(a, torch.Tensor) else a  # noqa: E731
        return tuple([detach(t) for t in a] if isinstance(a, (list, tuple)) else detach(a)
                     for a in args)


FORWARD = "strainer_fast.fused_mlp_forward.default"
BACKWARD = "strainer_fast.fused_mlp_backward.default"
