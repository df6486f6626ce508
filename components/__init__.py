"""One ComponentResource per concern; see ../README.md for the architecture."""
