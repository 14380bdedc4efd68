"""``python -m infra_mcp`` is the ``infra-mcp`` command."""

import sys

from infra_mcp.cli import main

sys.exit(main())
