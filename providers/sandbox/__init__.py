"""Emulators of the five provider APIs, served over real HTTP on loopback.

Not mocks: the console talks to them exactly as to the real services (paths, auth, body
encodings, required fields, error shapes), which is what demos, end-to-end tests,
benchmarks and fault tests need. See docs/sandbox.md.
"""
