"""Read endpoints (filled in with the read models)."""

READ_CONTROLLERS: list[type] = []
