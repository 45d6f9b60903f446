"""Keys for crypto-shredding: the master key (KEK), per-member data keys, their rotation.

Personal data in events is encrypted with a key that belongs to one member; erasing the
member deletes that key. The data keys are stored wrapped by the master key, which never
enters the database: see docs/operations.md ("Keys").
"""
