"""The project agent: creates the delivery project from the deal type's template."""
