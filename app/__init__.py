"""MAGE Studio's desktop GUI (PySide6). Talks to the model only through `engine.runtime`."""
