"""``infra-mcp sandbox`` flags and environment variables become the simulated cloud's knobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_mcp.sandbox.main import _settings, build_cloud, build_parser


def cloud_for(argv: list[str]):  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(argv)
    return build_cloud(_settings(args), args)


def test_environment_variables_set_the_knobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRA_MCP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INFRA_MCP_SANDBOX_LATENCY_MS", "250")
    monkeypatch.setenv("INFRA_MCP_SANDBOX_THROTTLE_RATE", "0.1")
    monkeypatch.setenv("INFRA_MCP_SANDBOX_SEED", "42")
    config = cloud_for([]).config
    assert (config.latency_ms, config.throttle_rate, config.seed) == (250, 0.1, 42)


def test_flags_override_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRA_MCP_SANDBOX_LATENCY_MS", "250")
    cloud = cloud_for(
        [
            "--data-dir",
            str(tmp_path),
            "--latency-ms",
            "5",
            "--operation-latency-ms",
            "delete=900",
            "--failure-rate",
            "0.2",
            "--failure-rate-type",
            "AWS::EC2::VPC=0.5",
            "--seed",
            "3",
        ]
    )
    config = cloud.config
    assert config.latency_seconds("CREATE") == 0.005
    assert config.latency_seconds("DELETE") == 0.9
    assert config.failure_rate_for("AWS::EC2::VPC") == 0.5
    assert config.failure_rate_for("AWS::S3::Bucket") == 0.2
    assert config.seed == 3
    assert cloud.store.path == tmp_path / "sandbox" / "cloud.json"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "argv",
    [
        ["--failure-rate", "2"],
        ["--failure-rate-type", "AWS::EC2::VPC"],
        ["--operation-latency-ms", "create=soon"],
        ["--http", "no-port"],
        ["--http", "127.0.0.1:٨٠"],  # int() reads Arabic-Indic digits; a port number must not
    ],
)
def test_malformed_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2


def test_an_operation_latency_for_a_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not CREATE"):
        cloud_for(["--data-dir", str(tmp_path), "--operation-latency-ms", "get=5"])


def test_read_latency_delays_reads_only_from_the_environment_or_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFRA_MCP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INFRA_MCP_SANDBOX_READ_LATENCY_MS", "50")
    config = cloud_for([]).config
    assert [config.read_delay_seconds(op) for op in ("GetResource", "ListResources", "CreateResource")] == [
        0.05,
        0.05,
        0.0,
    ]
    assert config.latency_seconds("CREATE") == 0.0
    assert cloud_for(["--read-latency-ms", "7"]).config.read_delay_seconds("GetResource") == 0.007
