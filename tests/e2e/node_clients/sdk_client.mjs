// The official TypeScript SDK client (the one behind Claude Desktop and Claude Code) driving infra-mcp:
// it answers the approval elicitation as a person would and counts execute_plan's progress notifications.
// Usage: node sdk_client.mjs <command> [args...]   (prints one JSON summary line on stdout)
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const here = new URL(".", import.meta.url).pathname;
const require = createRequire(join(here, "package.json"));
const load = async (specifier) => import(pathToFileURL(require.resolve(specifier)).href);
const { Client } = await load("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = await load("@modelcontextprotocol/sdk/client/stdio.js");
const { ElicitRequestSchema } = await load("@modelcontextprotocol/sdk/types.js");

const [command, ...args] = process.argv.slice(2);
const client = new Client({ name: "sdk-e2e", version: "1.0.0" }, { capabilities: { elicitation: {} } });
const prompts = [];
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  prompts.push(request.params.message);
  return { action: "accept", content: { approve: true, comment: "checked by the TypeScript client" } };
});
await client.connect(new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" }));

async function call(name, input, options) {
  const result = await client.callTool({ name, arguments: input }, undefined, options);
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  return result.structuredContent;
}

const stack = {
  resources: [
    { name: "vpc", type: "AWS::EC2::VPC", properties: { CidrBlock: "10.0.0.0/16" } },
    { name: "subnet", type: "AWS::EC2::Subnet", properties: { VpcId: { Ref: "vpc" }, CidrBlock: "10.0.1.0/24" } },
    { name: "logs", type: "AWS::S3::Bucket", properties: {} },
  ],
};
await call("create_project", { project_id: "web" });
const plan = await call("plan_changes", { project_id: "web", desired_state: stack });
const approval = await call("approve_plan", { plan_id: plan.plan_id });
let progress = 0;
const executed = await call("execute_plan", { plan_id: plan.plan_id }, {
  onprogress: () => { progress += 1; },
  resetTimeoutOnProgress: true,
});
await client.close();
console.log(JSON.stringify({
  plan: plan.status, approval: approval.outcome, method: approval.method, prompts: prompts.length,
  executed: executed.status, changes: executed.changes, progress,
}));
