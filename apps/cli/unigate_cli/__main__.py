"""``python -m unigate_cli``: the same as the ``unigate`` command."""

from unigate_cli.cli import main

main()
