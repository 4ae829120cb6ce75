"""``nflow``: the command-line program (console script and ``python -m nflow``)."""
import sys

from nflow.cli.commands import COMMANDS
from nflow.cli.parser import make_parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
