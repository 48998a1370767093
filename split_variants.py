"""The split-learning variants (filled in below)."""
VARIANT_ROLES = {}
