"""The cmd2 shell (the only package that imports cmd2)."""
