import pytest
import torch

from strainer_fast._extension import compiled_kernel_available, import_error


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Encoders the commands cache go to a temporary folder, never the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STRAINER_FAST_CACHE", str(tmp_path_factory.mktemp("strainer_fast_cache")))
    yield
    mp.undo()


requires_cpu_kernel = pytest.mark.skipif(
    not compiled_kernel_available("cpu"),
    reason=f"compiled CPU kernel not built ({import_error()})",
)
