"""Read models, one query module per model; the API and the CLI read through these."""
