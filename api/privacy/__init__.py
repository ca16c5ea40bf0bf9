"""Privacy: consent, opt-in recognition hooks, retention and pixelation."""
