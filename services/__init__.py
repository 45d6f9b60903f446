"""Everything with I/O: the store, the projector, the API, the CLI and the embedded database."""
