"""``python -m bplf``: see ``bplf.cli``."""

from bplf.cli import main

main()
