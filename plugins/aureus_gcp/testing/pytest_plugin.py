"""pytest fixtures offered to users (filled in with the emulator)."""
