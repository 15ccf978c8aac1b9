// A matrix-js-sdk client that syncs with simplified sliding sync (MSC4186, the SDK's SlidingSync class),
// driven over stdin/stdout with JSON lines like driver.mjs.
// Commands: {"id", "cmd", ...args}; replies: {"id", "ok", ...} or {"id", "error"}; SDK events: {"event", ...}.
import { out, passwordLogin, serve, waitPrepared } from "./harness.mjs";
const sdk = await import("matrix-js-sdk");
// SlidingSync is not re-exported by the package index; the package has no "exports" map, so import the module.
const { SlidingSync, SlidingSyncEvent, SlidingSyncState } = await import("matrix-js-sdk/lib/sliding-sync.js");

let client = null;
let sliding = null;

function watch(c, ss) {
  c.on(sdk.MatrixEventEvent.Decrypted, (event) => {
    out({ event: "decrypted", room_id: event.getRoomId(), sender: event.getSender(), type: event.getType(),
          body: event.getContent().body ?? null, failure: event.isDecryptionFailure() });
  });
  c.on(sdk.RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
    if (toStartOfTimeline) return;
    out({ event: "timeline", room_id: room.roomId, type: event.getType(), sender: event.getSender(),
          event_id: event.getId(), body: event.getContent().body ?? null });
  });
  c.on(sdk.RoomMemberEvent.Typing, (event, member) => {
    out({ event: "typing", room_id: member.roomId, user_id: member.userId, typing: member.typing });
  });
  c.on(sdk.ClientEvent.AccountData, (event) => {
    out({ event: "account_data", type: event.getType(), content: event.getContent() });
  });
  ss.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
    if (state !== SlidingSyncState.Complete || !resp) return;
    const rooms = {};
    for (const [roomId, data] of Object.entries(resp.rooms ?? {})) {
      rooms[roomId] = { initial: data.initial ?? false, name: data.name ?? null, bump_stamp: data.bump_stamp ?? null,
                        timeline: (data.timeline ?? []).length };
    }
    const lists = {};
    for (const [name, list] of Object.entries(resp.lists ?? {})) lists[name] = list.count;
    out({ event: "response", pos: resp.pos, lists, rooms, extensions: Object.keys(resp.extensions ?? {}) });
  });
}

const handlers = {
  // `crypto`: with the Rust crypto, which then takes its to-device messages, device lists and key
  // counts from the sliding sync's to_device and e2ee extensions, as Element X's crypto does.
  async login({ baseUrl, user, password, crypto }) {
    const resp = await passwordLogin(sdk, baseUrl, user, password);
    client = sdk.createClient({ baseUrl, accessToken: resp.access_token, userId: resp.user_id, deviceId: resp.device_id });
    if (crypto) await client.initRustCrypto({ useIndexedDB: false });
    const room = { timeline_limit: 10, required_state: [["*", "*"]] };
    const lists = new Map([["all", { ranges: [[0, 20]], ...room }]]);
    sliding = new SlidingSync(baseUrl, lists, room, client, 10000);
    watch(client, sliding);
    await client.startClient({ slidingSync: sliding });
    await waitPrepared(sdk, client);
    return { user_id: resp.user_id, device_id: resp.device_id };
  },
  async createRoom({ name }) {
    const r = await client.createRoom({ name });
    return { room_id: r.room_id };
  },
  async createEncryptedRoom({ name, invite }) {
    const r = await client.createRoom({
      name, invite: invite ?? [],
      initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    return { room_id: r.room_id };
  },
  async send({ roomId, body }) {
    const r = await client.sendTextMessage(roomId, body);
    return { event_id: r.event_id };
  },
  async rooms() {
    return { rooms: client.getRooms().map((r) => ({ room_id: r.roomId, name: r.name,
                                                  bodies: r.getLiveTimeline().getEvents()
                                                    .filter((e) => e.getType() === "m.room.message")
                                                    .map((e) => e.getContent().body) })) };
  },
  async stop() { client?.stopClient(); sliding?.stop(); setTimeout(() => process.exit(0), 50); return {}; },
};

serve(handlers, () => { client?.stopClient(); sliding?.stop(); });
