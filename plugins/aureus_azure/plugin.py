"""The pluggy plugin for azure (registrations land with the provider)."""
