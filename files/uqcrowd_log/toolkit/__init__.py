"""The researcher's toolkit behind the `uqcrowd-log` command: export, import, sessions, withdraw."""
