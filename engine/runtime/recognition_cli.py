"""Recognition commands (classify, probe, fewshot) for the command line."""


def add_commands(sub, add_model_options) -> None:
    """Register the recognition sub-commands on the CLI's sub-parser set."""
