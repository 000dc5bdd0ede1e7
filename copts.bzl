"""Compiler options for the project's own code (generated code is exempt)."""

OEE_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wformat=2",
    "-Wno-unused-parameter",
]
