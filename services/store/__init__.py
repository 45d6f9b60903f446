"""The ledger store."""
