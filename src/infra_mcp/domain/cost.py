"""Monthly cost estimate of a plan: before, after, delta, per-resource lines, what is unpriced.

Offline, prices come from a bundled, dated table (``catalog/prices_2026_10.json``, read by ``catalog.prices``) for
the common costly types. Anything billed by usage (S3 buckets, Lambda, on-demand DynamoDB, SQS,
...) is listed as *unpriced* with that reason rather than counted as zero, and types that AWS does
not charge for (VPCs, subnets, security groups, IAM, ...) are left out of the lines. A later
adapter can answer the same :class:`Pricing` protocol from the AWS Price List API.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from infra_mcp.domain.plan import Action, Change, CostEstimate, CostLine, Unpriced
from infra_mcp.domain.refs import as_reference
from infra_mcp.domain.sealed import digest_of
from infra_mcp.domain.state import StateFile, StateResource


@dataclass(frozen=True, slots=True)
class Quote:
    """The answer for one resource: a monthly price, no charge, or why it cannot be priced.

    Attributes:
        monthly: USD per month; None when unpriced.
        unit_price: Human-readable unit price, e.g. ``0.0104 USD/hour (t3.micro)``.
        source: Where the price comes from.
        reason: Why it is unpriced (usage-based, not in the table, unknown until apply).
        free: True for types AWS does not charge for.
    """

    monthly: float | None
    unit_price: str = ""
    source: str = ""
    reason: str = ""
    free: bool = False


class Pricing(Protocol):
    """Prices one resource's configuration.

    Implementations: :class:`BundledPricing` (offline table). A Price List adapter would call
    ``pricing get-products`` through the upstream (``aws pricing get-products --service-code
    AmazonEC2 --filters ...``), cache answers per (type, region, key properties), and return the
    same :class:`Quote` with ``source="AWS Price List API <date>"``. It must never answer 0 for a
    usage-based type: it returns ``Quote(None, reason="usage-based: ...")``.
    """

    @property
    def source(self) -> str: ...

    def quote(self, type_name: str, properties: Mapping[str, Any], region: str) -> Quote: ...


# Billed by use, not by existence: a monthly figure would be a guess, and zero would be a lie.
USAGE_BASED: dict[str, str] = {
    "AWS::S3::Bucket": "usage-based: priced per GB stored, per request and per GB transferred",
    "AWS::Lambda::Function": "usage-based: priced per request and per GB-second of compute",
    "AWS::SQS::Queue": "usage-based: priced per million requests",
    "AWS::SNS::Topic": "usage-based: priced per million publishes and deliveries",
    "AWS::ApiGateway::RestApi": "usage-based: priced per million API calls",
    "AWS::ApiGatewayV2::Api": "usage-based: priced per million API calls or messages",
    "AWS::Logs::LogGroup": "usage-based: priced per GB ingested and stored",
    "AWS::CloudFront::Distribution": "usage-based: priced per GB transferred and per request",
    "AWS::StepFunctions::StateMachine": "usage-based: priced per state transition",
    "AWS::Events::Rule": "usage-based: priced per event (custom and partner events)",
    "AWS::Events::EventBus": "usage-based: priced per event",
    "AWS::EFS::FileSystem": "usage-based: priced per GB stored",
    "AWS::ECR::Repository": "usage-based: priced per GB stored and transferred",
    "AWS::RDS::DBCluster": "usage-based: Aurora storage and I/O are priced per GB and per request "
    "(its instances are priced separately)",
    "AWS::KinesisFirehose::DeliveryStream": "usage-based: priced per GB ingested",
    "AWS::Athena::WorkGroup": "usage-based: priced per TB scanned",
    "AWS::Glue::Job": "usage-based: priced per DPU-hour",
    "AWS::CodeBuild::Project": "usage-based: priced per build minute",
    "AWS::Backup::BackupVault": "usage-based: priced per GB of backups stored",
    "AWS::CloudWatch::Dashboard": "priced per dashboard beyond the free tier",
}

# Types AWS does not charge for by themselves (what runs in or through them may cost).
NO_CHARGE: frozenset[str] = frozenset(
    {
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::RouteTable",
        "AWS::EC2::Route",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::NetworkAcl",
        "AWS::EC2::NetworkAclEntry",
        "AWS::EC2::SubnetNetworkAclAssociation",
        "AWS::EC2::DHCPOptions",
        "AWS::EC2::LaunchTemplate",
        "AWS::EC2::KeyPair",
        "AWS::EC2::PlacementGroup",
        "AWS::S3::BucketPolicy",
        "AWS::KMS::Alias",
        "AWS::Lambda::Permission",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",
        "AWS::RDS::DBSubnetGroup",
        "AWS::RDS::DBParameterGroup",
        "AWS::RDS::DBClusterParameterGroup",
        "AWS::ElastiCache::SubnetGroup",
        "AWS::ElastiCache::ParameterGroup",
        "AWS::Logs::MetricFilter",
        "AWS::SNS::Subscription",
        "AWS::SQS::QueuePolicy",
        "AWS::Route53::RecordSet",
    }
)


def _is_unknown(value: Any) -> bool:
    return as_reference(value) is not None or digest_of(value) is not None


class BundledPricing:
    """Prices from a price table already in memory (``catalog.prices`` reads the bundled one).

    Cheap per call: lookups are dicts.
    """

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.table = table

    @property
    def source(self) -> str:
        return f"bundled price table {self.table['date']}, {self.table['basis']}"

    def _source(self, region: str) -> str:
        date = self.table["date"]
        if region == "us-east-1":
            return f"bundled price table {date}, us-east-1 on-demand"
        return (
            f"bundled price table {date}, us-east-1 on-demand x {self._multiplier(region)} for {region} (approximate)"
        )

    def _multiplier(self, region: str) -> float | None:
        value = self.table["region_multipliers"].get(region)
        return float(value) if value is not None else None

    def quote(self, type_name: str, properties: Mapping[str, Any], region: str) -> Quote:
        if type_name in NO_CHARGE or type_name.startswith("AWS::IAM::"):
            return Quote(0.0, free=True, source="no charge")
        usage = USAGE_BASED.get(type_name)
        if usage is not None:
            return Quote(None, reason=usage)
        pricer = _PRICERS.get(type_name)
        if pricer is None:
            return Quote(None, reason=f"not in the bundled price table ({self.table['date']})")
        multiplier = self._multiplier(region)
        if multiplier is None:
            return Quote(None, reason=f"no bundled prices for region {region}")
        try:
            answer = pricer(self.table, properties)
        except _Unknown as exc:
            return Quote(None, reason=str(exc))
        if isinstance(answer, str):
            return Quote(None, reason=answer)
        monthly, unit = answer
        return Quote(round(monthly * multiplier, 4), unit_price=unit, source=self._source(region))


class _Unknown(Exception):
    """A property the price depends on is known only after apply."""


def _get(properties: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = properties.get(key, default)
    if _is_unknown(value):
        raise _Unknown(f"{key} is known only after apply")
    return value


def _hours(table: Mapping[str, Any]) -> float:
    return float(table["hours_per_month"])


def _hourly(table: Mapping[str, Any], rate: float, what: str, count: float = 1) -> tuple[float, str]:
    suffix = f" x {count:g}" if count != 1 else ""
    return rate * _hours(table) * count, f"{rate:g} USD/hour ({what}){suffix}"


def _ec2_instance(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    kind = _get(p, "InstanceType", "m1.small")
    rate = table["ec2_instance_hourly"].get(kind)
    if rate is None:
        return f"instance type {kind} is not in the bundled price table"
    return _hourly(table, rate, f"{kind}, instance hours only; EBS volumes priced separately")


def _ebs_volume(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    kind = _get(p, "VolumeType", "gp2")
    size = _get(p, "Size")
    if size is None:
        return "size comes from the snapshot; known only after apply"
    per_gb = table["ebs_gb_month"].get(kind)
    if per_gb is None:
        return f"volume type {kind} is not in the bundled price table"
    monthly = per_gb * float(size)
    unit = f"{per_gb:g} USD/GB-month ({kind}) x {size} GB"
    iops_rate = table["ebs_piops_month"].get(kind)
    iops = _get(p, "Iops")
    if iops_rate and iops:
        monthly += iops_rate * float(iops)
        unit += f" + {iops_rate:g} USD/IOPS-month x {iops}"
    return monthly, unit


def _rds_instance(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    if p.get("SourceDBInstanceIdentifier") is not None and not p.get("Engine"):
        source = p.get(_SOURCE)
        if not isinstance(source, dict):
            return "a read replica of a database outside this project: its engine is not known here"
        # A replica runs its source's engine and holds a copy of its storage.
        p = {"AllocatedStorage": source.get("AllocatedStorage"), **p, "Engine": source.get("Engine")}
    engine = str(_get(p, "Engine", "") or "").lower()
    klass = _get(p, "DBInstanceClass")
    if engine.startswith("aurora"):
        family = "aurora"
    elif engine in ("mysql", "mariadb"):
        family = "mysql"
    elif engine == "postgres":
        family = "postgres"
    else:
        return f"engine {engine or 'unspecified'} is priced with its licence model; not in the bundled table"
    rate = table["rds_instance_hourly"][family].get(klass)
    if rate is None:
        return f"instance class {klass} ({family}) is not in the bundled price table"
    multi_az = bool(_get(p, "MultiAZ", False)) and family != "aurora"
    monthly, unit = _hourly(table, rate, f"{klass}, {family}{', Multi-AZ' if multi_az else ''}", 2 if multi_az else 1)
    storage = _get(p, "AllocatedStorage")
    if storage is not None and family != "aurora":
        kind = _get(p, "StorageType", "gp2")
        per_gb = table["rds_storage_gb_month"].get(kind, table["rds_storage_gb_month"]["gp2"])
        copies = 2 if multi_az else 1
        monthly += per_gb * float(storage) * copies
        unit += f" + {per_gb:g} USD/GB-month storage x {storage} GB"
    return monthly, unit


def _per_node(table_key: str, class_key: str, count_key: str | None, default_count: int = 1) -> Any:
    def price(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
        node = _get(p, class_key)
        if isinstance(node, dict):  # OpenSearch: ClusterConfig.InstanceType
            return f"{class_key} is not a plain value"
        rate = table[table_key].get(node)
        if rate is None:
            return f"node type {node} is not in the bundled price table"
        count = float(_get(p, count_key, default_count) or default_count) if count_key else 1
        return _hourly(table, rate, f"{node} per node", count)

    return price


def _opensearch(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    config = _get(p, "ClusterConfig", {}) or {}
    if not isinstance(config, dict):
        return "ClusterConfig is known only after apply"
    node = _get(config, "InstanceType", "r5.large.search")
    count = float(_get(config, "InstanceCount", 1) or 1)
    rate = table["opensearch_instance_hourly"].get(node)
    if rate is None:
        return f"instance type {node} is not in the bundled price table"
    return _hourly(table, rate, f"{node} per node, storage priced separately", count)


def _fixed_hourly(key: str, what: str) -> Any:
    def price(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str]:
        return _hourly(table, table["hourly"][key], what)

    return price


def _fixed_monthly(key: str, what: str) -> Any:
    def price(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str]:
        rate = float(table["monthly"][key])
        return rate, f"{rate:g} USD/month ({what})"

    return price


def _load_balancer(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str]:
    kind = str(_get(p, "Type", "application") or "application")
    key = {"application": "alb", "network": "nlb", "gateway": "gwlb"}.get(kind, "alb")
    return _hourly(table, table["hourly"][key], f"{kind} load balancer hours; LCU usage not included")


def _vpc_endpoint(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str]:
    kind = str(_get(p, "VpcEndpointType", "Gateway") or "Gateway")
    if kind == "Gateway":
        return 0.0, "no charge (gateway endpoint)"
    subnets = _get(p, "SubnetIds", []) or []
    count = len(subnets) if isinstance(subnets, list) and subnets else 1
    rate = table["hourly"]["vpc_interface_endpoint_per_az"]
    return _hourly(table, rate, f"{kind} endpoint per AZ; data processed not included", count)


def _dynamodb(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    if _get(p, "BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
        return "usage-based: on-demand tables are priced per read and write request and per GB stored"
    throughput = _get(p, "ProvisionedThroughput", {}) or {}
    reads = float(_get(throughput, "ReadCapacityUnits", 0) or 0)
    writes = float(_get(throughput, "WriteCapacityUnits", 0) or 0)
    # Each global secondary index has its own provisioned capacity, billed like the table's.
    indexes = _get(p, "GlobalSecondaryIndexes", []) or []
    for index in indexes if isinstance(indexes, list) else []:
        capacity = _get(index, "ProvisionedThroughput", {}) if isinstance(index, dict) else {}
        if isinstance(capacity, dict):
            reads += float(_get(capacity, "ReadCapacityUnits", 0) or 0)
            writes += float(_get(capacity, "WriteCapacityUnits", 0) or 0)
    rcu, wcu = table["hourly"]["dynamodb_rcu"], table["hourly"]["dynamodb_wcu"]
    monthly = (reads * rcu + writes * wcu) * _hours(table)
    gsis = f", table + {len(indexes)} GSI(s)" if indexes else ""
    return (
        monthly,
        f"{rcu:g} USD/RCU-hour x {reads:g} + {wcu:g} USD/WCU-hour x {writes:g}{gsis}; storage not included",
    )


def _ecs_service(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    strategy = _get(p, "CapacityProviderStrategy", []) or []
    providers = {str(s.get("CapacityProvider")) for s in strategy if isinstance(s, dict)}
    fargate = _get(p, "LaunchType", "") == "FARGATE" or bool(providers & {"FARGATE", "FARGATE_SPOT"})
    if not fargate:
        return "usage-based: an EC2-backed service is priced by its container instances, priced separately"
    task = p.get(_TASK)
    if not isinstance(task, dict):
        return "the task definition's CPU and memory are known only after apply"
    try:
        vcpu = float(task.get("Cpu") or 0) / 1024
        memory = float(task.get("Memory") or 0) / 1024
    except (TypeError, ValueError):
        return "the task definition's CPU and memory are not plain numbers"
    count = float(_get(p, "DesiredCount", 1) if p.get("DesiredCount") is not None else 1)
    rate_cpu, rate_gb = table["hourly"]["fargate_vcpu"], table["hourly"]["fargate_gb"]
    hourly = vcpu * rate_cpu + memory * rate_gb
    unit = (
        f"Fargate {count:g} task(s) x ({vcpu:g} vCPU x {rate_cpu:g} + {memory:g} GB x {rate_gb:g} USD/hour), "
        "running all month; Fargate Spot and storage not counted"
    )
    return hourly * count * _hours(table), unit


def _eks_nodegroup(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    scaling = _get(p, "ScalingConfig", {}) or {}
    count = float(_get(scaling, "DesiredSize", _get(scaling, "MinSize", 1)) or 1) if isinstance(scaling, dict) else 1
    kinds = _get(p, "InstanceTypes", None) or ["t3.medium"]
    kind = str(kinds[0]) if isinstance(kinds, list) and kinds else "t3.medium"
    rate = table["ec2_instance_hourly"].get(kind)
    if rate is None:
        return f"instance type {kind} is not in the bundled price table"
    return _hourly(table, rate, f"{kind} per node, desired size; EBS not included", count)


def _auto_scaling_group(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    kind = p.get(_INSTANCE_TYPE)
    if not isinstance(kind, str):
        return "the launch template's instance type is known only after apply"
    raw = p.get("DesiredCapacity") if p.get("DesiredCapacity") is not None else p.get("MinSize", 0)
    if _is_unknown(raw):
        return "the desired capacity is known only after apply"
    count = float(raw or 0)
    rate = table["ec2_instance_hourly"].get(kind)
    if rate is None:
        return f"instance type {kind} is not in the bundled price table"
    return _hourly(table, rate, f"{kind} x desired capacity, instance hours only", count)


def _kinesis(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str] | str:
    mode = _get(p, "StreamModeDetails", {}) or {}
    if isinstance(mode, dict) and mode.get("StreamMode") == "ON_DEMAND":
        return "usage-based: on-demand streams are priced per GB written and read"
    shards = float(_get(p, "ShardCount", 1) or 1)
    return _hourly(table, table["hourly"]["kinesis_shard"], "per shard; PUT payload units not included", shards)


def _nat_gateway(table: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[float, str]:
    if _get(p, "ConnectivityType", "public") == "private":
        rate = table["hourly"]["nat_gateway"]
        return _hourly(table, rate, "private NAT gateway hours; data processed not included")
    return _hourly(table, table["hourly"]["nat_gateway"], "NAT gateway hours; data processed not included")


_PRICERS: dict[str, Any] = {
    "AWS::EC2::Instance": _ec2_instance,
    "AWS::EC2::Volume": _ebs_volume,
    "AWS::RDS::DBInstance": _rds_instance,
    "AWS::EC2::NatGateway": _nat_gateway,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _load_balancer,
    "AWS::ElasticLoadBalancing::LoadBalancer": _fixed_hourly("clb", "classic load balancer hours"),
    "AWS::EKS::Cluster": _fixed_hourly("eks_cluster", "EKS control plane"),
    "AWS::ElastiCache::CacheCluster": _per_node("elasticache_node_hourly", "CacheNodeType", "NumCacheNodes"),
    "AWS::ElastiCache::ReplicationGroup": _per_node(
        "elasticache_node_hourly", "CacheNodeType", "NumCacheClusters", default_count=1
    ),
    "AWS::Redshift::Cluster": _per_node("redshift_node_hourly", "NodeType", "NumberOfNodes"),
    "AWS::OpenSearchService::Domain": _opensearch,
    "AWS::Elasticsearch::Domain": _opensearch,
    "AWS::EC2::EIP": _fixed_hourly("public_ipv4", "public IPv4 address"),
    "AWS::EC2::VPCEndpoint": _vpc_endpoint,
    "AWS::EC2::TransitGatewayAttachment": _fixed_hourly("transit_gateway_attachment", "attachment; data not included"),
    "AWS::EC2::TransitGatewayVpcAttachment": _fixed_hourly(
        "transit_gateway_attachment", "attachment; data not included"
    ),
    "AWS::SecretsManager::Secret": _fixed_monthly("secretsmanager_secret", "per secret; API calls not included"),
    "AWS::KMS::Key": _fixed_monthly("kms_key", "customer managed key; requests not included"),
    "AWS::Route53::HostedZone": _fixed_monthly("route53_hosted_zone", "hosted zone; queries not included"),
    "AWS::CloudWatch::Alarm": _fixed_monthly("cloudwatch_alarm", "standard-resolution alarm"),
    "AWS::DynamoDB::Table": _dynamodb,
    "AWS::ECS::Service": _ecs_service,
    "AWS::EKS::Nodegroup": _eks_nodegroup,
    "AWS::AutoScaling::AutoScalingGroup": _auto_scaling_group,
    "AWS::Kinesis::Stream": _kinesis,
}


# Facts a price needs from another resource, added by :func:`with_context` under keys no
# CloudFormation property has.
_SOURCE = "__source_database__"
_TASK = "__task_definition__"
_INSTANCE_TYPE = "__instance_type__"


def with_context(
    type_name: str, properties: Mapping[str, Any], lookup: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any]:
    """``properties`` with what their price needs from the resources they refer to.

    A read replica's engine is its source's; a Fargate service's size is its task definition's;
    an auto scaling group's instance type is its launch template's.

    Args:
        type_name: The resource's type.
        properties: Its properties.
        lookup: Properties of the other resources by logical name (desired, else current).
    """

    def target(value: Any) -> Mapping[str, Any] | None:
        ref = as_reference(value)
        return lookup.get(ref.target) if ref is not None else None

    if type_name == "AWS::RDS::DBInstance" and "SourceDBInstanceIdentifier" in properties:
        source = target(properties["SourceDBInstanceIdentifier"])
        if source is not None:
            return {**properties, _SOURCE: dict(source)}
    if type_name == "AWS::ECS::Service":
        task = target(properties.get("TaskDefinition"))
        if task is not None:
            return {**properties, _TASK: {"Cpu": task.get("Cpu"), "Memory": task.get("Memory")}}
    if type_name == "AWS::AutoScaling::AutoScalingGroup":
        kind = _asg_instance_type(properties, target)
        if kind is not None:
            return {**properties, _INSTANCE_TYPE: kind}
    return properties


def _asg_instance_type(properties: Mapping[str, Any], target: Any) -> str | None:
    spec = properties.get("LaunchTemplate")
    if isinstance(spec, dict):
        template = target(spec.get("LaunchTemplateId")) or target(spec.get("LaunchTemplateName"))
        data = template.get("LaunchTemplateData") if template is not None else None
        kind = data.get("InstanceType") if isinstance(data, dict) else None
        return kind if isinstance(kind, str) else None
    config = target(properties.get("LaunchConfigurationName"))
    kind = config.get("InstanceType") if config is not None else None
    return kind if isinstance(kind, str) else None


def priceable(type_name: str) -> bool:
    """True if the bundled table can put a number on this type (its configuration permitting)."""
    return type_name in _PRICERS


def _state_view(resource: StateResource) -> Mapping[str, Any]:
    # What AWS reports fills in defaults (StorageType, ...); what the user declared wins.
    if not resource.declared:
        return resource.properties
    return {**resource.properties, **resource.declared}


class _StateViews(Mapping[str, Mapping[str, Any]]):
    """:func:`_state_view` of each current resource, worked out when a price first needs it.

    Most resources of a large state are of types nobody prices (subnets, queues, log groups):
    their views are never read, so they are never built. ``desired`` (by name) hides the
    current view of a resource the plan changes.
    """

    def __init__(
        self,
        existing: Mapping[str, StateResource],
        desired: Mapping[str, Mapping[str, Any]] | None = None,
        views: dict[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._existing = existing
        self._desired = desired or {}
        self._views: dict[str, Mapping[str, Any]] = {} if views is None else views

    def with_desired(self, desired: Mapping[str, Mapping[str, Any]]) -> _StateViews:
        """The same views, with ``desired`` properties in place of the current ones."""
        return _StateViews(self._existing, desired, self._views)

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        if name in self._desired:
            return self._desired[name]
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = _state_view(self._existing[name])
        return view

    def __iter__(self) -> Iterator[str]:
        yield from self._existing
        yield from (name for name in self._desired if name not in self._existing)

    def __len__(self) -> int:
        return len(self._existing) + sum(1 for name in self._desired if name not in self._existing)


def estimate(changes: Iterable[Change], current: StateFile | None, pricing: Pricing) -> CostEstimate:
    """Monthly cost of the current state, after the plan, and the per-resource lines that change.

    ``monthly_before`` covers every priceable resource in the current state; ``monthly_after`` is
    that minus what the plan deletes or changes plus what it creates or changes. Lines and
    ``unpriced`` list only resources the plan touches, so the estimate stays readable.
    """
    existing = {r.name: r for r in current.resources} if current is not None else {}
    in_state = _StateViews(existing)
    before_total = 0.0
    for resource in existing.values():
        if resource.type in _PRICERS:
            view = with_context(resource.type, in_state[resource.name], in_state)
            before_total += pricing.quote(resource.type, view, resource.region).monthly or 0.0

    changes = list(changes)
    lookup = in_state.with_desired({c.name: c.desired.properties for c in changes if c.desired is not None})
    lines: list[CostLine] = []
    unpriced: list[Unpriced] = []
    delta = 0.0
    for change in changes:
        if change.action is Action.NOOP:
            continue
        old = existing.get(change.name)
        before = (
            pricing.quote(old.type, with_context(old.type, _state_view(old), lookup), old.region)
            if old is not None
            else None
        )
        after = None
        if change.action is not Action.DELETE and change.desired is not None:
            desired = with_context(change.desired.type, change.desired.properties, lookup)
            after = pricing.quote(change.desired.type, desired, change.desired.region)
        quotes = [q for q in (before, after) if q is not None]
        if all(q.free for q in quotes):
            continue
        missing = next((q for q in quotes if q.monthly is None), None)
        if missing is not None:
            unpriced.append(Unpriced(name=change.name, type=change.type, reason=missing.reason))
            continue
        monthly_before = (before.monthly or 0.0) if before is not None else 0.0
        monthly_after = (after.monthly or 0.0) if after is not None else 0.0
        if change.action is Action.UPDATE and monthly_before == monthly_after:
            continue  # an update that does not move the price is not news
        main = after if after is not None and not after.free else before
        assert main is not None  # at least one quote is priced and not free
        lines.append(
            CostLine(
                name=change.name,
                type=change.type,
                monthly_before=round(monthly_before, 2),
                monthly_after=round(monthly_after, 2),
                unit_price=main.unit_price,
                source=main.source,
            )
        )
        delta += monthly_after - monthly_before
    return CostEstimate(
        monthly_before=round(before_total, 2),
        monthly_after=round(before_total + delta, 2),
        monthly_delta=round(delta, 2),
        lines=lines,
        unpriced=unpriced,
        source=pricing.source,
    )
