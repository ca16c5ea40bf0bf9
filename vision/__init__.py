"""Person detection, frame sources and multi-object tracking."""
