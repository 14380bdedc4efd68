"""Pure domain: models and rules. No I/O, no MCP, no boto3."""
