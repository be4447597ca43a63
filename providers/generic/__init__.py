"""The generic provider: any REST ticketing API, described by a JSON configuration (issue #13)."""
