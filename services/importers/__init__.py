"""Importers (JSONL, CSV, Git history) and the JSONL export, all through the one write path."""
