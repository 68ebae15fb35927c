"""Conversation: two or more people, each in their own language, routed by where they sit."""
