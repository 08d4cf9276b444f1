"""The finance agent: prices the invoice and issues it in billing."""
