"""Render ``storesense --help`` and every sub-command's help as a Markdown page."""

from __future__ import annotations

import argparse
import os


def cli_page(intro: str) -> str:
    """One section per sub-command, with its help text as argparse prints it."""
    from storesense.api.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal width
    parser = build_parser()
    parser.prog = "storesense"
    out = ["# Command line", "", intro, "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [f"## `storesense {name}`", "", "```text", sub.format_help().rstrip()]
                out += ["```", ""]
                for sub_action in sub._actions:
                    if isinstance(sub_action, argparse._SubParsersAction):
                        for leaf_name, leaf in sub_action.choices.items():
                            out += [f"### `storesense {name} {leaf_name}`", "", "```text"]
                            out += [leaf.format_help().rstrip(), "```", ""]
    return "\n".join(out)
