"""Which properties give a resource a fixed, user-chosen unique name.

When such a name is set and unchanged, a replacement cannot create the new resource before
deleting the old one: both would claim the same name. The plan then says
``delete_before_create`` in advance, so the reviewer knows there will be a gap.
"""

from __future__ import annotations

from infra_mcp.domain.type_catalog import ResourceTypeInfo

# Names unique within an account/region (or VPC) that are *not* the type's primary identifier,
# so the registry schema alone does not reveal them. Primary identifiers the user can set
# (BucketName, DBInstanceIdentifier, FunctionName, TableName, RoleName, ...) are found from the
# schema and need no entry here.
EXTRA_UNIQUE_NAMES: dict[str, tuple[str, ...]] = {
    "AWS::EC2::SecurityGroup": ("GroupName",),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": ("Name",),
    "AWS::ElasticLoadBalancingV2::TargetGroup": ("Name",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::EKS::Cluster": ("Name",),
    "AWS::ECS::Cluster": ("ClusterName",),
    "AWS::ECR::Repository": ("RepositoryName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::Kinesis::Stream": ("Name",),
    "AWS::SecretsManager::Secret": ("Name",),
    "AWS::ElastiCache::ReplicationGroup": ("ReplicationGroupId",),
    "AWS::ElastiCache::CacheCluster": ("ClusterName",),
    "AWS::OpenSearchService::Domain": ("DomainName",),
    "AWS::Elasticsearch::Domain": ("DomainName",),
    "AWS::Redshift::Cluster": ("ClusterIdentifier",),
    "AWS::RDS::DBSubnetGroup": ("DBSubnetGroupName",),
    "AWS::EC2::KeyPair": ("KeyName",),
}


def fixed_name_properties(info: ResourceTypeInfo) -> list[str]:
    """Top-level properties that, when the user sets them, fix the resource's unique name."""
    read_only = set(info.read_only_properties)
    from_identifier = [p for p in info.primary_identifier if "/" not in p and p not in read_only]
    return list(dict.fromkeys([*from_identifier, *EXTRA_UNIQUE_NAMES.get(info.type_name, ())]))
