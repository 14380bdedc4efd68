"""infra-mcp: an MCP server for planned, approved, versioned AWS changes."""

__version__ = "0.2.0"
