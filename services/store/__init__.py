"""The ledger store: the one way into `events` and `event_tags`.

- `ledger`: the `Ledger`: append, recall, and reads by stream, tag and id.
- `appending`: the call to `ledger_append` behind `Ledger.append`, and its errors.
- `feed`: the global feed (horizon, head, reads after a position, LISTEN).
- `state`: what the handler's loader reads for the rules, set-based.
- `identity`: a handle's owner and the members merged into one, straight from the ledger.
- `records`: the row shapes all of them share.
- `privileges`: what the API's and the projector's database roles may do (`db upgrade`).
- `idempotency`: deleting Idempotency-Keys past their retention.
"""
