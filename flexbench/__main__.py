"""``python -m flexbench`` runs the CLI."""

from flexbench.cli import main

main()
