// What every test driver here shares: the Node 20 polyfill the SDK needs, JSON-line output, and the
// command loop. Import it statically, before the SDK is imported dynamically, so the polyfill comes first.
// Commands: {"id", "cmd", ...args}; replies: {"id", "ok", ...} or {"id", "error"}; SDK events: {"event", ...}.
import readline from "node:readline";

if (!Promise.withResolvers) {
  // Node 20 lacks Promise.withResolvers, which the SDK uses (it declares Node >= 22).
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

export const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Answer each command line on stdin with handlers[cmd](msg); call onClose and exit when stdin closes.
export function serve(handlers, onClose) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    let msg;
    try { msg = JSON.parse(line); } catch { return; }
    try {
      if (!handlers[msg.cmd]) throw new Error(`unknown command ${msg.cmd}`);
      const result = await handlers[msg.cmd](msg);
      out({ id: msg.id, ok: true, ...result });
    } catch (err) {
      out({ id: msg.id, ok: false, error: String(err?.data?.errcode ?? "") + " " + String(err?.message ?? err) });
    }
  });
  rl.on("close", () => { onClose(); process.exit(0); });
}

// Resolve once the client's first sync is done (rejects on a sync error). `sdk` is the imported SDK.
export async function waitPrepared(sdk, c) {
  if (c.getSyncState() === "PREPARED" || c.getSyncState() === "SYNCING") return;
  await new Promise((resolve, reject) => {
    c.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
      if (state === "ERROR") reject(new Error("sync error"));
    });
  });
}

// POST /login with a password; the response (access_token, user_id, device_id).
export function passwordLogin(sdk, baseUrl, user, password) {
  return sdk.createClient({ baseUrl })
    .loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user }, password });
}
