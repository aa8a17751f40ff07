"""Notifications in GraphQL (see resolvers.py)."""
