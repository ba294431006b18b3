"""Accounts: users, passwords, tokens, Google sign-in, API keys, lockout, rate limits."""
