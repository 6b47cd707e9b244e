"""digest: arXiv papers to Korean structured digests, published as Jekyll Daily Papers posts."""

# The one place the version is set: the package's metadata (pyproject.toml) reads it, and a
# blog made by `digest init` pins it in its requirements.txt.
__version__ = "0.2.0"

# The name on PyPI: PyPI's "digest" is an unrelated project with its own `digest` command.
DISTRIBUTION = "digest-papers"
