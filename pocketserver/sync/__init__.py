"""Sync: stream positions, tokens, filters and the notifier that wakes long-polls."""
