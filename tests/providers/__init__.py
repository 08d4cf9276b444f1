"""Local servers that speak real providers' HTTP protocols, with their rules and faults."""
