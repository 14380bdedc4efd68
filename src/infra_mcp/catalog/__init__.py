"""AWS resource type knowledge, read lazily from the registry schemas that cfn-lint ships."""

from infra_mcp.catalog.registry import Catalog, ResourceTypeInfo, default_catalog

__all__ = ["Catalog", "ResourceTypeInfo", "default_catalog"]
