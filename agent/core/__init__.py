"""leaderd protocol core: sans-I/O, runs under CPython 3.10+ and MicroPython."""
