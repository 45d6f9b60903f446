"""Personal data in the ledger: data keys, sealing, erasure (docs/privacy.md)."""
