"""Numbered SQL migrations (package data)."""
