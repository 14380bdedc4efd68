"""``python -m infra_mcp.sandbox``: the same as ``infra-mcp sandbox``."""

import sys

from infra_mcp.sandbox.main import main

if __name__ == "__main__":
    sys.exit(main())
