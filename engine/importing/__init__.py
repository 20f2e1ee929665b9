"""Import layer: official checkpoints -> model bundles with NumPy + onnx only (no PyTorch).

- `torch_zip`: a restricted reader of `torch.save` files (nothing in the file is imported,
  called or instantiated; only state-dict data comes out, as read-only NumPy views);
- `flax_msgpack`: a reader of Flax msgpack checkpoints (data only);
- `templates`: weight-free ONNX graphs made once by the PyTorch export and shipped here,
  filled with a checkpoint's tensors and written with one copy of each weight;
- `mage`, `maskgit` (with `maskgit_names`): the `import-mage` and `import-maskgit` commands;
- `bundle`, `checks`, `target`: writing, checking (onnxruntime) and installing the bundle.

Never imports torch; the runtime never imports this package (it needs onnx).
"""
