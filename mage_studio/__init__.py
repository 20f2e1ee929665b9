"""MAGE Studio: the `mage-studio` command and `python -m mage_studio`.

In an installed wheel this package also carries the shipped data as plain folders:
`mage_studio/exported_models/` (the model bundles) and `mage_studio/assets/` (icon, desktop
entry, sample photos). In a checkout they are the top-level `exported_models/` and `assets/`.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("mage-studio")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0.1.0"
