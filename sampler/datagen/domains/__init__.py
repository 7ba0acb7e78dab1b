"""The five planning domains, by name: blocksworld, ferry, grippers, spanner, delivery."""

from __future__ import annotations

from sampler.datagen.domains.base import DomainGenerator, DomainSizeError
from sampler.datagen.domains.blocksworld import Blocksworld
from sampler.datagen.domains.delivery import Delivery
from sampler.datagen.domains.ferry import Ferry
from sampler.datagen.domains.grippers import Grippers
from sampler.datagen.domains.spanner import Spanner

GENERATORS: dict[str, DomainGenerator] = {
    g.name: g for g in (Blocksworld(), Ferry(), Grippers(), Spanner(), Delivery())
}
DOMAIN_NAMES: tuple[str, ...] = tuple(GENERATORS)


def get_generator(name: str) -> DomainGenerator:
    """The generator of a domain; ValueError naming the known domains otherwise."""
    try:
        return GENERATORS[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; known domains: {', '.join(DOMAIN_NAMES)}") from None


__all__ = ["DOMAIN_NAMES", "GENERATORS", "DomainGenerator", "DomainSizeError", "get_generator"]
