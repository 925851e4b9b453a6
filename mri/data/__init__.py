"""Readers, generated data, features, tags, pairs and DataModules (plain Python except the DataModules)."""
