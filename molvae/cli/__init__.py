"""The ``molvae`` command line: ``main`` dispatches to one module per subcommand."""

from molvae.cli.main import main

__all__ = ["main"]
