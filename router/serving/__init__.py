"""Calling models: upstream calls, fallback chains, cascades, local models, breakers, shared
state, sessions, budgets and the decision log. Built on `router.core`, never on the SDK."""
