"""The command line: one module per command; ``cli`` parses and dispatches."""
