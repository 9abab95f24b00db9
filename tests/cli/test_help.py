"""Every option of every `kflow` command says what it does."""

import argparse

from kflow.cli.main import build_parser


def walk(parser: argparse.ArgumentParser, name="kflow"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from walk(sub, f"{name} {sub_name}")
        elif not isinstance(action, argparse._HelpAction):
            yield name, action


def test_every_option_has_help_text():
    missing = [
        f"{cmd} {a.option_strings[0] if a.option_strings else a.dest}"
        for cmd, a in walk(build_parser())
        if not (a.help or "").strip()
    ]
    assert not missing, "options without help: " + ", ".join(missing)
