"""The ``mer-keras`` command line (typer): parse, call the library, print."""
