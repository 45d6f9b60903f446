"""Webhooks: subscriptions, safe targets, signing secrets and the dispatcher that delivers."""
