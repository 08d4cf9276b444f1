"""Entry points over the deal graph: the Python service API, the CLI and the demo.

`DealService` is loaded when first asked for (`from dealflow import DealService`),
so that a command that needs no graph (`dealflow --help`, `dealflow threads`)
does not import LangGraph by importing this package.
"""

from typing import TYPE_CHECKING, Any

from dealflow.errors import DealflowError

if TYPE_CHECKING:
    from dealflow.api import DealService

__all__ = ["DealService", "DealflowError"]


def __getattr__(name: str) -> Any:
    """`DealService`, imported on first use (PEP 562)."""
    if name == "DealService":
        from dealflow.api import DealService

        return DealService
    raise AttributeError(f"module 'dealflow' has no attribute {name!r}")
