"""MAGE Studio entry point: no command opens the editor; sub-commands give the CLI."""

import sys

CLI_COMMANDS = {"edit", "generate", "extend", "classify", "probe", "fewshot", "import-mage",
                "export", "train", "-h", "--help"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in CLI_COMMANDS:
        from engine.cli import main as cli_main

        return cli_main(argv)
    from app.launch import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
