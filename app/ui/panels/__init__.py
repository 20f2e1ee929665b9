"""Dock panels of the main window; each binds to the Editor and holds no document state."""
