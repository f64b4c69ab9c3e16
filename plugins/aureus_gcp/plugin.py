"""The pluggy plugin for gcp (registrations land with the provider)."""
