"""unigate's shared library: configuration, contracts, storage and helpers used by every service."""
