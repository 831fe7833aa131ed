"""Entry point of the ``adalif`` command (see :mod:`adalif.train.cli`)."""

import sys


def main() -> None:
    from .train.cli import main as run

    sys.exit(run())


if __name__ == "__main__":
    main()
