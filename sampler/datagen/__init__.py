"""Generators for the five planning domains, a reference planner, and the dataset builder."""

from sampler.datagen.builder import build_dataset
from sampler.datagen.domains import DOMAIN_NAMES, get_generator

__all__ = ["DOMAIN_NAMES", "build_dataset", "get_generator"]
