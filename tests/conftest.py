"""Shared fixtures. Each tier adds its own in its folder's conftest.py."""

from __future__ import annotations

import os

# No test may reach a real AWS account: fake credentials, and no profile from the developer's machine.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
