"""PyTorch side: MAGE + VQGAN modules, official checkpoint import, ONNX export, training.

Never imported by the app or by `engine.runtime`; import torch only from here.
"""
