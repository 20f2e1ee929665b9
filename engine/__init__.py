"""MAGE Studio engine: everything that is not GUI.

`engine.runtime` runs bundles with NumPy + onnxruntime; `engine.modeling` (PyTorch) builds,
imports, exports and trains models.
"""

import os as _os

# onnxruntime's official Linux builds (1.29 and later) send usage events to Microsoft
# (mobile.events.data.microsoft.com, about 10 s after the first session) and keep a device id
# and an event store in ~/.cache/Microsoft unless this is set before onnxruntime is imported;
# its disable_telemetry_events() call does not stop them. Every path to onnxruntime here
# passes through this package, and child processes inherit the setting. MAGE Studio connects
# nowhere unless the user asks for a download.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"
