"""``python -m nnshell`` runs the shell."""

import sys

from nnshell.shell.cli import main

sys.exit(main())
