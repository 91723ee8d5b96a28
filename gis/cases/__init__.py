"""The case loop: the cases layer's workflow (report to close), its history and its routes."""
