"""The contract agent: renders the contract and sends it for e-signature."""
