"""Aureus aws plugin (in progress)."""
