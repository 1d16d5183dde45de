"""The ``molvae`` command line: ``main`` dispatches to one module per subcommand (``molvae.cli.NAME``)."""

from molvae.cli.main import main

__all__ = ["main"]
