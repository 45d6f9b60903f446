"""Community Ledger's pure core: events, commands, the rules that decide, folds; no I/O."""
