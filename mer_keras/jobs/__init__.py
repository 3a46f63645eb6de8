"""Jobs: one module per command, each a short sequence of named steps over the library."""
