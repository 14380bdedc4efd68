# infra-mcp as a team server: `serve --http` on port 8000, for the replicas of deploy/compose.yaml
# (or any orchestrator). Build: docker build -t infra-mcp .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# uv provides `uvx`, which starts the AWS API MCP server as the upstream (INFRA_MCP_UPSTREAM_COMMAND=uvx).
RUN pip install "uv>=0.5" \
 && useradd --create-home --uid 10001 --user-group infra \
 && install -d -o infra -g infra -m 0700 /var/lib/infra-mcp

WORKDIR /opt/infra-mcp
COPY pyproject.toml README.md ./
COPY src ./src
COPY prompts ./prompts
RUN pip install .

USER infra
# Per replica: the sandbox's simulated cloud (when no upstream is configured) and uv's cache.
# Projects live in PostgreSQL (INFRA_MCP_DATABASE_URL), state in S3 (INFRA_MCP_STATE_LOCATION),
# and the server key comes from a secret shared by every replica (INFRA_MCP_KEY_FILE).
ENV INFRA_MCP_DATA_DIR=/var/lib/infra-mcp
EXPOSE 8000
ENTRYPOINT ["infra-mcp"]
# Without INFRA_MCP_AUTH_ISSUER (and INFRA_MCP_PUBLIC_URL) this bind is refused: set them.
CMD ["serve", "--http", "0.0.0.0:8000"]
