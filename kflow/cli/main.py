"""The `kflow` command: one parser built from each subcommand's module (train, sample, inspect,
eval, edit/restore, data, molecules, studio, demo). Errors are one line (exit 2) unless --debug."""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """A command line argparse refuses (unknown option, a value of the wrong kind)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line through main(), not usage + exit from inside argparse
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from . import data, eval, inspection, molecules, sample, steer, studio, train

    p = Parser(prog="kflow", description="K-Flow: flow matching band by band")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)
    train.add_parser(sub)
    sample.add_parser(sub)
    inspection.add_parser(sub)
    eval.add_parser(sub)
    steer.add_parsers(sub)  # edit, restore
    data.add_parser(sub)
    molecules.add_parser(sub)
    studio.add_parser(sub)
    train.add_demo_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        takes_overrides = args.cmd == "train" or getattr(args, "mol_cmd", None) == "train"
        if extra and takes_overrides and all("=" in a and not a.startswith("-") for a in extra):
            args.overrides += extra  # key=value overrides after an option (`--resume train.steps=9`)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as e:
        print(f"kflow: error: {e}", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("kflow: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for users; --debug for the traceback
        if args.debug:
            raise
        from ..utils.errors import KFlowError

        known = (KFlowError, ValueError, OSError, ImportError)
        if isinstance(e, known):
            print(f"kflow: error: {e}", file=sys.stderr)
        else:  # a bug or an input we did not foresee: still one line, the traceback behind --debug
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(
                f"kflow: error: unexpected {type(e).__name__}: {first} (rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
