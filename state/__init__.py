"""The data layer of dealflow: typed state, domain models, configuration and persistence.

Nothing here imports `graph` or `agents`; they build on it.
"""
