// An editor made of the official ACP TypeScript SDK's client side, driving an
// agent command (`kfd acp`) through one scenario. The test gives the scenario
// as JSON in argv[2]; this program reports what happened as JSON lines on
// stdout ({"event": ...}), so the test can follow along and act in between
// (answer an approval from another frontend, say). It ends with
// {"event": "done", ...} or {"event": "failed", "error": ...}.
//
// Scenario fields:
//   command      the agent command line (argv)
//   env          its environment
//   cwd          the workspace of a new session
//   load         a session id to load instead of creating one
//   prompt       the text of a prompt to send (none: no prompt)
//   answer       what permission requests get: an option id, or "wait" (until
//                the agent withdraws the request with $/cancel_request)
//   cancelAfter  send session/cancel after the first update of this kind
//   raw          lines written as they are before anything else (bad input)
//   mcpServers   the session's MCP servers, as ACP has them (default: none)
//   files        offer fs/read_text_file and fs/write_text_file, served from
//                {buffers: {absolute path: unsaved text}, save: bool}: a read
//                sees the buffer (else the disk), a write goes into the buffer
//                and onto disk only when save is true; each is reported as
//                {"event": "fs", op, path, content}
//   answers      answers for successive permission requests (then `answer`)

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import * as acp from "@agentclientprotocol/sdk";

const scenario = JSON.parse(process.argv[2]);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const agent = spawn(scenario.command[0], scenario.command.slice(1), {
  stdio: ["pipe", "pipe", "inherit"],
  env: scenario.env,
});

let cancelled = false;
let sessionId = null;
let cancelSent = null;

const app = acp
  .client({ name: "kfd-test-editor" })
  .onNotification(acp.methods.client.session.update, async (ctx) => {
    say({ event: "update", sessionId: ctx.params.sessionId, update: ctx.params.update });
    const kind = ctx.params.update.sessionUpdate;
    if (scenario.cancelAfter === kind && !cancelled && sessionId) {
      cancelled = true;
      cancelSent = ctx.agent.notify(acp.methods.agent.session.cancel, { sessionId });
    }
  })
  .onRequest(acp.methods.client.session.requestPermission, async (ctx) => {
    const { toolCall, options } = ctx.params;
    say({ event: "asked", requestId: ctx.requestId, toolCall, options });
    if (scenario.answer === "wait") {
      await new Promise((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener("abort", resolve, { once: true });
      });
      say({ event: "withdrawn", requestId: ctx.requestId, toolCallId: toolCall.toolCallId });
      return { outcome: { outcome: "cancelled" } };
    }
    const optionId = scenario.answers?.shift() ?? scenario.answer ?? "allow";
    return { outcome: { outcome: "selected", optionId } };
  })
  .onRequest(acp.methods.client.fs.readTextFile, async (ctx) => {
    const { path } = ctx.params;
    say({ event: "fs", op: "read", path });
    const buffers = scenario.files?.buffers ?? {};
    return { content: path in buffers ? buffers[path] : readFileSync(path, "utf8") };
  })
  .onRequest(acp.methods.client.fs.writeTextFile, async (ctx) => {
    const { path, content } = ctx.params;
    say({ event: "fs", op: "write", path, content });
    scenario.files.buffers = { ...scenario.files.buffers, [path]: content };
    if (scenario.files.save) writeFileSync(path, content);
    return {};
  });

async function main() {
  if (scenario.raw) {
    // Bad input first, straight onto the agent's stdin; its answers are reported.
    const answers = await rawExchange(scenario.raw);
    say({ event: "raw", answers });
  }
  const stream = acp.ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));
  const result = await app.connectWith(stream, async (ctx) => {
    const init = await ctx.request(acp.methods.agent.initialize, {
      protocolVersion: acp.PROTOCOL_VERSION,
      clientCapabilities: {
        fs: { readTextFile: Boolean(scenario.files), writeTextFile: Boolean(scenario.files) },
      },
      clientInfo: { name: "kfd-test-editor", version: "1.0.0" },
    });
    say({ event: "initialized", init });
    if (scenario.load) {
      sessionId = scenario.load;
      const loaded = await ctx.request(acp.methods.agent.session.load, {
        sessionId,
        cwd: scenario.cwd,
        mcpServers: scenario.mcpServers ?? [],
      });
      say({ event: "loaded", loaded });
    } else {
      const created = await ctx.request(acp.methods.agent.session.new, {
        cwd: scenario.cwd,
        mcpServers: scenario.mcpServers ?? [],
      });
      sessionId = created.sessionId;
      say({ event: "created", created });
    }
    if (scenario.unknownSession) {
      try {
        await ctx.request(acp.methods.agent.session.prompt, {
          sessionId: scenario.unknownSession,
          prompt: [{ type: "text", text: "hello?" }],
        });
        say({ event: "unexpected", what: "a prompt for an unknown session was answered" });
      } catch (error) {
        say({ event: "refused", code: error.code, message: error.message });
      }
    }
    if (scenario.prompt === undefined) return { sessionId };
    const answer = await ctx.request(acp.methods.agent.session.prompt, {
      sessionId,
      prompt: [{ type: "text", text: scenario.prompt }],
    });
    if (cancelSent) await cancelSent;
    return { sessionId, stopReason: answer.stopReason };
  });
  say({ event: "done", ...result });
}

async function rawExchange(lines) {
  // Each raw line gets one answer line (errors for bad input); read them back.
  const answers = [];
  let buffer = "";
  let settle;
  const all = new Promise((resolve) => (settle = resolve));
  const reader = (chunk) => {
    buffer += chunk.toString();
    let index;
    while ((index = buffer.indexOf("\n")) >= 0) {
      answers.push(JSON.parse(buffer.slice(0, index)));
      buffer = buffer.slice(index + 1);
    }
    if (answers.length >= lines.length) settle();
  };
  agent.stdout.on("data", reader);
  for (const line of lines) agent.stdin.write(line + "\n");
  await all;
  agent.stdout.off("data", reader);
  agent.stdout.pause();
  return answers;
}

main()
  .catch((error) => say({ event: "failed", error: String(error?.stack ?? error) }))
  .finally(() => {
    agent.stdin.end();
    if (!scenario.keepAgent) agent.kill("SIGTERM");
    agent.on("exit", (code, signal) => {
      say({ event: "agent_exit", code, signal });
      process.exit(0);
    });
  });
