"""The Flax msgpack reader lives in the import layer (engine/importing/flax_msgpack.py)."""

from engine.importing.flax_msgpack import Shape, Spec, read_flax_checkpoint

__all__ = ["Shape", "Spec", "read_flax_checkpoint"]
