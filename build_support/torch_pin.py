"""scikit-build-core metadata provider: pins torch to the series the extension is built against.

The compiled extension links libtorch, whose C++ ABI changes between minor releases, so the
wheel requires ``torch==<major>.<minor>.*`` of the interpreter that builds it.
"""

from __future__ import annotations

from typing import Any


def dynamic_metadata(field: str, settings: dict[str, Any] | None = None) -> list[str]:
    if field != "dependencies":
        raise RuntimeError("torch_pin only provides 'dependencies'")
    import torch  # the build runs without isolation, in the user's environment

    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    extra = list((settings or {}).get("extra", []))
    return [f"torch=={major}.{minor}.*", *extra]
