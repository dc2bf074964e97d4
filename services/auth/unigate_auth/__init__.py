"""The auth service: who is this key, may it make this call, reserve its quota, and which
channels may serve it."""
