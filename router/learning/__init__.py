"""Learning from traffic: gated retraining, hot reload and shadow judging."""
