"""Westique Rewards: the rewards program engine, its HTTP API and its command line."""
