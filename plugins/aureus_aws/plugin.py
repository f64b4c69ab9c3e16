"""The pluggy plugin for aws (registrations land with the provider)."""
