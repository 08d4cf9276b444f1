"""The lead agent: scores a lead and records the result in the CRM."""
