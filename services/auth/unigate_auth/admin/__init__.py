"""The management side of auth: ``AdminService`` (``protos/unigate/v1/admin.proto``), the
gRPC face of users, API keys, channels, redemption codes and options that the gateway's
``/api/*`` REST layer calls."""
