"""Model registry and fetch."""
