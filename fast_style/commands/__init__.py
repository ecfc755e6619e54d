"""Subcommands of the ``fast-style`` console command, one module each (see :mod:`fast_style.cli`)."""
