"""Entry points over the deal graph: the Python service API, the CLI and the demo."""

from dealflow.api import DealService
from dealflow.errors import DealflowError

__all__ = ["DealService", "DealflowError"]
