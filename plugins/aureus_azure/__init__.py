"""Aureus azure plugin (in progress)."""
