"""The channel key as AWS credentials, and requests signed with Signature Version 4.

Reference: AWS "Signature Version 4 signing process"; the signing itself is botocore's
(``SigV4Auth``), the same code the AWS SDK for Python signs Bedrock calls with. The key is
``AccessKeyId|SecretAccessKey`` or, for temporary credentials, ``…|SessionToken``.
"""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from unigate_relay.providers.bedrock.wire import SERVICE


class KeyFormatError(ValueError):
    """A channel key that is not ``AccessKeyId|SecretAccessKey[|SessionToken]``."""


def credentials(key: str) -> Credentials:
    parts = key.strip().split("|")
    if len(parts) not in (2, 3) or not all(parts):
        raise KeyFormatError(
            "The channel key must be AccessKeyId|SecretAccessKey or "
            "AccessKeyId|SecretAccessKey|SessionToken."
        )
    return Credentials(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def signed_headers(
    creds: Credentials, region: str, url: str, body: bytes, headers: dict[str, str]
) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, ``Authorization`` (and ``X-Amz-Security-Token``) for a
    POST of ``body`` to ``url``; every header given is signed, so all must be sent as given."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(creds, SERVICE, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}
