"""MAGE Studio engine: everything that is not GUI.

`engine.runtime` runs bundles with NumPy + onnxruntime; `engine.modeling` (PyTorch) builds,
imports, exports and trains models.
"""
