"""The settings a PNG carries in its text chunks, as the tests read them back."""

from __future__ import annotations

import os

from PIL import Image, PngImagePlugin


def read_png_text(path: str | os.PathLike) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of the PNG at `path` (asserts that it is a PNG)."""
    with Image.open(path) as image:
        assert isinstance(image, PngImagePlugin.PngImageFile), (
            f"{path} is {image.format}, not a PNG"
        )
        return {str(key): str(value) for key, value in image.text.items()}
