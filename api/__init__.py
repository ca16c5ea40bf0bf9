"""HTTP API, CLI, stores and camera workers."""
