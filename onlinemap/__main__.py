"""``python -m onlinemap`` runs the CLI."""
from onlinemap.cli import main

main()
