"""What the command-line tests share: running ``nflow`` in-process, and the PNG signature their outputs start with."""
from nflow.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*argv):
    """main's exit status, whether it returns it or exits with it (argparse, ``fail``); any other exception
    escapes and fails the test: that is the traceback a user would see."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return e.code
