"""Per-domain easy/medium/hard buckets at score percentiles, with tied scores always in one bucket."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sampler.config import BUCKETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BucketTable:
    """One domain's buckets: record indices per bucket, thresholds and the buckets that fall back.

    A record is easy when its score <= the low percentile, medium when <= the high one, hard
    above it. Cutting by score value (not by rank) is what keeps equal scores together.
    An empty bucket falls back, as the seed did, to the domain's whole pool.
    """

    domain: str
    thresholds: tuple[float, float]
    members: dict[str, np.ndarray]  # bucket -> record indices into the domain's index (int64)
    fallback: tuple[str, ...]  # buckets left empty by ties, drawn from every record of the domain

    def pool(self, bucket: str) -> np.ndarray:
        """Record indices a draw for `bucket` comes from (the whole domain for a fallback bucket)."""
        if bucket in self.fallback:
            return np.sort(np.concatenate([self.members[b] for b in BUCKETS]))
        return self.members[bucket]

    def counts(self) -> dict[str, int]:
        return {b: len(self.members[b]) for b in BUCKETS}

    def bucket_of(self, n: int) -> np.ndarray:
        """Bucket code (index into BUCKETS) of each of the domain's n records (int8)."""
        codes = np.empty(n, dtype=np.int8)
        for code, b in enumerate(BUCKETS):
            codes[self.members[b]] = code
        return codes


def assign_buckets(domain: str, scores: np.ndarray, percentiles: tuple[float, float] = (40.0, 80.0)) -> BucketTable:
    """Split one domain's scores at two percentiles; warn once when ties leave a bucket empty."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError(f"Domain {domain} has no samples in any bucket")
    low, high = (float(v) for v in np.percentile(scores, percentiles))
    codes = np.where(scores <= low, 0, np.where(scores <= high, 1, 2))
    members = {b: np.flatnonzero(codes == i) for i, b in enumerate(BUCKETS)}
    fallback = tuple(b for b in BUCKETS if members[b].size == 0)
    if fallback:
        log.warning(
            "Domain %s: bucket(s) %s empty because of tied difficulty scores (thresholds %.4g/%.4g); "
            "drawing them from all %d samples of the domain",
            domain, ", ".join(fallback), low, high, scores.size,
        )
    return BucketTable(domain=domain, thresholds=(low, high), members=members, fallback=fallback)


def bucket_rows(tables: dict[str, BucketTable], scores: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """One row per (domain, bucket): count and score range, for the preview table and metrics."""
    rows: list[dict[str, object]] = []
    for domain, table in tables.items():
        for b in BUCKETS:
            idx = table.members[b]
            sel = scores[domain][idx]
            rows.append({
                "domain": domain, "bucket": b, "count": int(idx.size),
                "min_score": float(sel.min()) if idx.size else None,
                "max_score": float(sel.max()) if idx.size else None,
                "fallback": b in table.fallback,
            })
    return rows
