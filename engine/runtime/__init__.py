"""Shipped inference path: NumPy + onnxruntime only (never torch, onnx or Qt)."""
