"""AWS resource type knowledge, read lazily from the registry schemas that cfn-lint ships."""

from infra_mcp.catalog.registry import Catalog, default_catalog
from infra_mcp.domain.type_catalog import ResourceTypeInfo

__all__ = ["Catalog", "ResourceTypeInfo", "default_catalog"]
