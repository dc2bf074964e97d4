"""The operator's application: the ``unigate`` command (migrations, certificates, channels,
keys, the ledger) and ``unigate dev``'s local stack.

It is a client of the services, as the management API is: it calls them over gRPC with the
operator's mTLS identity (``admin``) and imports none of them (``tests/unit/test_layering.py``).
"""
