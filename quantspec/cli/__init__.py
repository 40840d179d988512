"""The ``quantspec`` command-line interface: one module per subcommand."""
