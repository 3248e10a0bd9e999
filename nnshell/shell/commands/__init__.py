"""One CommandSet per group of commands."""
