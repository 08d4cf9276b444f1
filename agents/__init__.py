"""The agents (lead, project, contract, finance) and the systems of record they act on."""
