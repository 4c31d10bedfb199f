"""``python -m retap`` is the ``retap`` command."""

from retap.cli import main

main()
