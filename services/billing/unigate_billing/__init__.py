"""The billing service: the usage ledger, fed exactly once per request from JetStream."""
