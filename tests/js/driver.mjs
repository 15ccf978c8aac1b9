// A matrix-js-sdk client driven over stdin/stdout with JSON lines, for pocketserver's tests.
// Commands: {"id", "cmd", ...args}; replies: {"id", "ok", ...} or {"id", "error"}; SDK events: {"event", ...}.
if (!Promise.withResolvers) {
  // Node 20 lacks Promise.withResolvers, which the SDK uses (it declares Node >= 22).
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
const sdk = await import("matrix-js-sdk");
import readline from "node:readline";

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
let client = null;

function watch(c) {
  c.on(sdk.RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
    if (toStartOfTimeline) return;
    out({ event: "timeline", room_id: room.roomId, type: event.getType(), sender: event.getSender(),
          event_id: event.getId(), body: event.getContent().body ?? null,
          displayname: event.getContent().displayname ?? null });
  });
  c.on(sdk.RoomMemberEvent.Typing, (event, member) => {
    out({ event: "typing", room_id: member.roomId, user_id: member.userId, typing: member.typing });
  });
  c.on(sdk.RoomEvent.Receipt, (event, room) => {
    out({ event: "receipt", room_id: room.roomId, content: event.getContent() });
  });
  c.on(sdk.RoomMemberEvent.Name, (event, member) => {
    out({ event: "member_name", room_id: member.roomId, user_id: member.userId, name: member.name });
  });
  c.on(sdk.RoomEvent.UnreadNotifications, (counts, threadId) => {
    out({ event: "unread", counts: counts ?? null, thread_id: threadId ?? null });
  });
}

async function waitPrepared(c) {
  if (c.getSyncState() === "PREPARED" || c.getSyncState() === "SYNCING") return;
  await new Promise((resolve, reject) => {
    c.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
      if (state === "ERROR") reject(new Error("sync error"));
    });
  });
}

const handlers = {
  async login({ baseUrl, user, password }) {
    const tmp = sdk.createClient({ baseUrl });
    const resp = await tmp.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user }, password });
    client = sdk.createClient({ baseUrl, accessToken: resp.access_token, userId: resp.user_id, deviceId: resp.device_id });
    watch(client);
    await client.startClient({ initialSyncLimit: 20 });
    await waitPrepared(client);
    return { user_id: resp.user_id, device_id: resp.device_id };
  },
  async createRoom({ name, invite }) {
    const r = await client.createRoom({ name, invite: invite ?? [] });
    return { room_id: r.room_id };
  },
  async join({ roomId }) { await client.joinRoom(roomId); return {}; },
  async send({ roomId, body }) {
    const r = await client.sendTextMessage(roomId, body);
    return { event_id: r.event_id };
  },
  async setDisplayName({ name }) { await client.setDisplayName(name); return {}; },
  async typing({ roomId, typing }) { await client.sendTyping(roomId, typing, 30000); return {}; },
  async readReceipt({ roomId, eventId }) {
    const room = client.getRoom(roomId);
    const event = room?.findEventById(eventId);
    if (!event) throw new Error("event not found in the client's timeline");
    await client.sendReadReceipt(event);
    return {};
  },
  async unread({ roomId }) {
    const room = client.getRoom(roomId);
    return { total: room?.getUnreadNotificationCount("total") ?? null,
             highlight: room?.getUnreadNotificationCount("highlight") ?? null };
  },
  async members({ roomId }) {
    const room = client.getRoom(roomId);
    return { joined: room ? room.getJoinedMembers().map((m) => [m.userId, m.name]) : [] };
  },
  async relations({ roomId, eventId, relType }) {
    const r = await client.relations(roomId, eventId, relType ?? null, null);
    return { events: r.events.map((e) => ({ event_id: e.getId(), type: e.getType(), sender: e.getSender(),
                                            rel_type: e.getWireContent()["m.relates_to"]?.rel_type ?? null })) };
  },
  async stop() { client?.stopClient(); setTimeout(() => process.exit(0), 50); return {}; },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  try {
    const result = await handlers[msg.cmd](msg);
    out({ id: msg.id, ok: true, ...result });
  } catch (err) {
    out({ id: msg.id, ok: false, error: String(err?.data?.errcode ?? "") + " " + String(err?.message ?? err) });
  }
});
rl.on("close", () => { client?.stopClient(); process.exit(0); });
