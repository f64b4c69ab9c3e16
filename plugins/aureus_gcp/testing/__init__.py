"""Test helpers for the gcp plugin."""
