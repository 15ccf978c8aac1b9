"""Accounts: users, devices, access tokens, passwords and user-interactive auth."""
