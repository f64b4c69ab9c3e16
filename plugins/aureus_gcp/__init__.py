"""Aureus gcp plugin (in progress)."""
