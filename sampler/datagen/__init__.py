"""Generators for the five planning domains, a reference planner, and the dataset builder."""
