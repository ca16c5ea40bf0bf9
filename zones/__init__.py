"""Store layout, zone and line events, and store metrics."""
