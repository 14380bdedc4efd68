"""In-memory fakes of the ports, one name per fake.

- ``stores``: ``FakeProjectStore``, ``FakeStateStore(s)``, ``FlakyStateStores``, ``TEST_NOTARY``;
- ``cloud_control``: ``FakeUpstream`` over an ``InMemoryCloud`` (the ``Upstream`` port), and ``World``,
  the services wired over these fakes with a controllable clock;
- ``aws_mcp_servers``: ``FakeAwsAccount`` behind real MCP servers speaking the upstream dialects
  (``call_aws``, ``aws___run_script``), for the MCP client's tests.
"""
