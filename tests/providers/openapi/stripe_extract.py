"""Regenerate `stripe.json`: the request parameters of the Stripe calls dealflow makes.

Source: stripe-python 16.1.0 from PyPI, whose `stripe/params/*.py` are
"generated from our OpenAPI spec" (github.com/stripe/openapi, `openapi/spec3.json`).
The spec itself (about 7 MB) could not be fetched here; its generated request
types name the same parameters, and which are required. For each operation the
file keeps the top-level parameter names and the required ones.

Run: python tests/providers/openapi/stripe_extract.py   (needs pip and PyPI)
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "16.1.0"
OUT = Path(__file__).with_name("stripe.json")
OPERATIONS = {
    "POST /v1/customers": "_customer_create_params",
    "GET /v1/tax_rates": "_tax_rate_list_params",
    "POST /v1/tax_rates": "_tax_rate_create_params",
    "GET /v1/invoices": "_invoice_list_params",
    "POST /v1/invoices": "_invoice_create_params",
    "GET /v1/invoices/search": "_invoice_search_params",
    "GET /v1/invoices/{invoice}": "_invoice_retrieve_params",
    "POST /v1/invoiceitems": "_invoice_item_create_params",
    "POST /v1/invoices/{invoice}/finalize": "_invoice_finalize_invoice_params",
    "POST /v1/invoices/{invoice}/send": "_invoice_send_invoice_params",
}


def parameters(source: str) -> dict[str, list[str]]:
    """The first params class's fields: all, and those not `NotRequired[...]`."""
    tree = ast.parse(source)
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    names, required = [], []
    for item in cls.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.append(item.target.id)
            wrapped = isinstance(item.annotation, ast.Subscript) and isinstance(
                item.annotation.value, ast.Name) and item.annotation.value.id == "NotRequired"
            if not wrapped:
                required.append(item.target.id)
    return {"params": sorted(names), "required": sorted(required)}


def main() -> None:
    """Download the pinned wheel and write `stripe.json`."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", f"stripe=={VERSION}",
                        "--no-deps", "-q", "-d", tmp], check=True)
        (wheel,) = Path(tmp).glob("stripe-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            operations = {op: parameters(archive.read(f"stripe/params/{module}.py").decode())
                          for op, module in OPERATIONS.items()}
    OUT.write_text(json.dumps({"source": f"stripe-python {VERSION} stripe/params (generated "
                                         "from github.com/stripe/openapi spec3.json)",
                               "operations": operations}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
