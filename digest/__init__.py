"""digest: arXiv papers to Korean structured digests, published as Jekyll Daily Papers posts."""

__version__ = "0.1.0"
