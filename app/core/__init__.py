"""The app's Qt-free core: the document and its history, mask operations, the run options and
the session store. Nothing here imports PySide6 or qtawesome (an import-linter contract in
pyproject.toml keeps it so), so it runs and is tested without a display."""
