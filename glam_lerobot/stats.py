"""Confidence intervals for success rates, as the paper reports them.

wilson(k, n)                  95% Wilson score interval of one success rate k/n (Wilson 1927).
newcombe_wilson(k1, n1, k2, n2)  95% interval of the difference p1 - p2 of two independent rates, from their
                              Wilson intervals (Newcombe 1998, method 10: "hybrid score").
Both stay inside [0, 1] / [-1, 1] and behave at 0/n and n/n, where the normal (Wald) interval collapses.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the 97.5% quantile of N(0, 1)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(lower, upper) Wilson score interval of k successes in n trials."""
    if n <= 0:
        raise ValueError(f"wilson: need at least one trial, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"wilson: successes k={k} must be in [0, n={n}]")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_wilson(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(difference p1 - p2, lower, upper): Newcombe's hybrid score interval for two independent proportions."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, lower), min(1.0, upper)
