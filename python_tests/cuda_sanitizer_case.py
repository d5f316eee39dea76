"""Forward + backward of the fused CUDA ops in every precision on small shapes, odd (separate
epilogue kernels) and aligned (the GEMM-fused epilogues; on cc 9.0 also the sm_90a forward,
dX-with-gate and bf16 dW kernels): the case that compute-sanitizer (memcheck, racecheck) runs
(test_cuda.py, benchmarks/gpu_check.py)."""

import torch

import strainer_fast

for widths in ((3, 70, 129, 2), (3, 64, 128, 8)):
    for shared in (True, False):
        for last_linear in (True, False):
            S, N = 3, 131
            g = torch.Generator().manual_seed(0)
            x = (torch.rand((N, 3) if shared else (S, N, 3), generator=g) * 2 - 1).cuda()
            w = [((torch.rand(S, o, i, generator=g) * 2 - 1) * 0.1).cuda().requires_grad_()
                 for i, o in zip(widths[:-1], widths[1:])]
            b = [(torch.rand(S, o, generator=g) * 2 - 1).cuda().requires_grad_()
                 for o in widths[1:]]
            for precision in ("exact", "tf32", "bf16"):
                out = strainer_fast.batched_sine_mlp(x.requires_grad_(), w, b, 30.0, last_linear,
                                                     backend="cuda", precision=precision)
                out.sum().backward()
torch.cuda.synchronize()
print("sanitizer-ok")
