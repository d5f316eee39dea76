import pytest
import torch

from strainer_fast._extension import compiled_kernel_available, import_error


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


requires_cpu_kernel = pytest.mark.skipif(
    not compiled_kernel_available("cpu"),
    reason=f"compiled CPU kernel not built ({import_error()})",
)
