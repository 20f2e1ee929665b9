"""Model commands: import-mage and import-maskgit (the import layer: NumPy + onnx, no PyTorch),
and export/train handed to the modeling side's own parser."""

from __future__ import annotations

from engine.cli.console import safe_text
from engine.runtime.errors import MageError


def _need_torch(command: str) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise MageError(
            f"'{command}' needs PyTorch: install the modeling extra (pip install -e '.[modeling]')"
        )


def cmd_import_mage(args) -> int:
    from engine.importing.mage import import_mage

    import_mage(
        args.checkpoint,
        args.output,
        vqgan=args.vqgan,
        name=args.name,
        overwrite=args.overwrite,
        say=lambda line: print(safe_text(line)),
    )
    return 0


def cmd_import_maskgit(args) -> int:
    from engine.importing.maskgit import import_maskgit

    import_maskgit(
        args.tokenizer,
        args.transformer,
        args.output,
        name=args.name,
        overwrite=args.overwrite,
        say=lambda line: print(safe_text(line)),
    )
    return 0


FORWARDED = ("export", "train")  # handed whole to engine.modeling.train's own parser


def cmd_forward(args) -> int:
    _need_torch(args.command)
    from engine.modeling import train

    argv = (["export"] if args.command == "export" else []) + list(args.args)
    return train.main(argv)
