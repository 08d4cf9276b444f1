"""The systems of record the agents act on, one small interface per system.

The built-in implementation is the Postgres sandbox (`agents.systems.sandbox`);
a real provider plugs in behind the same protocols.
"""

from agents.systems.base import (
    CRM,
    Billing,
    ContractRepository,
    ESign,
    IdempotencyConflict,
    ProjectTool,
    SystemOfRecord,
    Systems,
    SystemUnavailable,
)

__all__ = [
    "CRM",
    "Billing",
    "ContractRepository",
    "ESign",
    "IdempotencyConflict",
    "ProjectTool",
    "SystemOfRecord",
    "SystemUnavailable",
    "Systems",
]
