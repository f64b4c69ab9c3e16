"""Test helpers for the azure plugin."""
