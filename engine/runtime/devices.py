"""Where a model runs: the device choices every front end offers (kept free of onnxruntime, so
listing them costs nothing)."""

DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when a GPU works, else the CPU
