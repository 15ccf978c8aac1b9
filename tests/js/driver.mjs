// A matrix-js-sdk client driven over stdin/stdout with JSON lines, for pocketserver's tests.
// Commands: {"id", "cmd", ...args}; replies: {"id", "ok", ...} or {"id", "error"}; SDK events: {"event", ...}.
import { out, passwordLogin, serve, waitPrepared } from "./harness.mjs";
const sdk = await import("matrix-js-sdk");

const { PollStartEvent } = await import("matrix-js-sdk/lib/extensible_events_v1/PollStartEvent.js");
const { PollResponseEvent } = await import("matrix-js-sdk/lib/extensible_events_v1/PollResponseEvent.js");
const { PollEndEvent } = await import("matrix-js-sdk/lib/extensible_events_v1/PollEndEvent.js");
const { M_POLL_KIND_DISCLOSED } = await import("matrix-js-sdk/lib/@types/polls.js");

let client = null;

function watch(c) {
  c.on(sdk.RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
    if (toStartOfTimeline) return;
    out({ event: "timeline", room_id: room.roomId, type: event.getType(), sender: event.getSender(),
          event_id: event.getId(), body: event.getContent().body ?? null,
          displayname: event.getContent().displayname ?? null,
          membership: event.getMembershipAtEvent() ?? null });
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
  c.on(sdk.RoomEvent.Tags, (event, room) => {
    out({ event: "tags", room_id: room.roomId, tags: room.tags });
  });
  c.on(sdk.ClientEvent.Sync, (state, prevState, data) => {
    if (state === "ERROR") out({ event: "sync_error", errcode: data?.error?.errcode ?? null });
  });
  c.on(sdk.RoomEvent.UnreadNotifications, (counts, threadId) => {
    out({ event: "unread", counts: counts ?? null, thread_id: threadId ?? null });
  });
}

const handlers = {
  async login({ baseUrl, user, password, threadSupport }) {
    const resp = await passwordLogin(sdk, baseUrl, user, password);
    client = sdk.createClient({ baseUrl, accessToken: resp.access_token, userId: resp.user_id, deviceId: resp.device_id });
    watch(client);
    // threadSupport: as Element Web runs it (thread timelines, per-thread unread counts, the thread list).
    await client.startClient({ initialSyncLimit: 20, threadSupport: !!threadSupport });
    await waitPrepared(sdk, client);
    return { user_id: resp.user_id, device_id: resp.device_id };
  },
  async createRoom({ name, invite }) {
    const r = await client.createRoom({ name, invite: invite ?? [] });
    return { room_id: r.room_id };
  },
  async join({ roomId }) { await client.joinRoom(roomId); return {}; },
  async invite({ roomId, userId }) { await client.invite(roomId, userId); return {}; },
  async leave({ roomId }) { await client.leave(roomId); return {}; },
  async knock({ roomId, reason }) { await client.knockRoom(roomId, { reason }); return {}; },
  async myMembership({ roomId }) { return { membership: client.getRoom(roomId)?.getMyMembership() ?? null }; },
  async send({ roomId, body }) {
    const r = await client.sendTextMessage(roomId, body);
    return { event_id: r.event_id };
  },
  async sendThreaded({ roomId, threadId, body }) {
    const r = await client.sendMessage(roomId, threadId, { msgtype: "m.text", body });
    return { event_id: r.event_id };
  },
  // The room's threads as Element's thread panel shows them (all threads, and "my threads"); `fetch`
  // first asks the thread list API.
  async threads({ roomId, fetch }) {
    const room = client.getRoom(roomId);
    if (!room) throw new Error("no such room");
    if (fetch) {                      // as Element's thread panel does when it opens
      await room.createThreadsTimelineSets();
      await room.fetchRoomThreads();
    }
    const roots = (i) => room.threadsTimelineSets[i]?.getLiveTimeline().getEvents().map((e) => e.getId()) ?? null;
    const threads = room.getThreads().map((t) => ({
      id: t.id, length: t.length, latest: t.replyToEvent?.getContent().body ?? null,
      unread: room.getThreadUnreadNotificationCount(t.id, "total") }));
    const main = room.getLiveTimeline().getEvents().map((e) => e.getContent().body ?? null).filter((b) => b);
    return { all: roots(0), mine: roots(1), threads, main };
  },
  async createSpace({ name }) {
    const r = await client.createRoom({ name, creation_content: { type: "m.space" } });
    return { room_id: r.room_id };
  },
  async addChild({ spaceId, roomId, via }) {
    await client.sendStateEvent(spaceId, "m.space.child", { via }, roomId);
    return {};
  },
  async hierarchy({ roomId }) {
    const r = await client.getRoomHierarchy(roomId, 50, 3);
    return { rooms: r.rooms.map((room) => ({ room_id: room.room_id, name: room.name ?? null,
                                             room_type: room.room_type ?? null,
                                             children: room.children_state.map((c) => c.state_key) })) };
  },
  async roomType({ roomId }) { return { type: client.getRoom(roomId)?.getType() ?? null }; },
  async upgradeRoom({ roomId, version }) {
    const r = await client.upgradeRoom(roomId, version);
    return { replacement_room: r.replacement_room };
  },
  // The rooms an upgraded room replaced and was replaced by, as Element links them.
  async upgradeHistory({ roomId }) {
    return { rooms: client.getRoomUpgradeHistory(roomId, true).map((room) => room.roomId) };
  },
  // Polls as Element sends them (MSC3381 extensible events); the results as Element's poll tally
  // reads them: the SDK's Poll model, which fetches the responses with /relations.
  async startPoll({ roomId, question, answers }) {
    const ev = PollStartEvent.from(question, answers, M_POLL_KIND_DISCLOSED).serialize();
    return { event_id: (await client.sendEvent(roomId, ev.type, ev.content)).event_id };
  },
  async votePoll({ roomId, pollId, answerIds }) {
    const ev = PollResponseEvent.from(answerIds, pollId).serialize();
    return { event_id: (await client.sendEvent(roomId, ev.type, ev.content)).event_id };
  },
  async endPoll({ roomId, pollId }) {
    const ev = PollEndEvent.from(pollId, "The poll has ended").serialize();
    return { event_id: (await client.sendEvent(roomId, ev.type, ev.content)).event_id };
  },
  async pollResults({ roomId, pollId }) {
    const poll = client.getRoom(roomId)?.polls.get(pollId);
    if (!poll) return { found: false };
    const responses = await poll.getResponses();
    const text = new Map((poll.pollEvent?.answers ?? []).map((a) => [a.id, a.text]));
    const votes = responses.getRelations().map((e) => [e.getSender(), (e.unstableExtensibleEvent?.answerIds ?? []).map((id) => text.get(id) ?? id)])
      .sort();
    return { found: true, ended: poll.isEnded, question: poll.pollEvent?.question?.text ?? null, votes };
  },
  async addPushRule({ kind, ruleId, body }) { await client.addPushRule("global", kind, ruleId, body); return {}; },
  // Element's settings: the sessions list, renaming and signing out sessions (UIA with the password,
  // as Element's InteractiveAuth answers the 401), changing the password.
  async getDevices() {
    return { devices: (await client.getDevices()).devices.map((d) => ({ device_id: d.device_id,
                                                                         display_name: d.display_name ?? null })) };
  },
  async renameDevice({ deviceId, name }) { await client.setDeviceDetails(deviceId, { display_name: name }); return {}; },
  async deleteDevices({ deviceIds, password }) {
    try {
      await client.deleteMultipleDevices(deviceIds);
      return { uia: null };
    } catch (err) {
      if (err?.httpStatus !== 401 || !err?.data?.flows) throw err;
      await client.deleteMultipleDevices(deviceIds, { type: "m.login.password", session: err.data.session,
        identifier: { type: "m.id.user", user: client.getUserIdLocalpart() }, password });
      return { uia: err.data.flows.map((f) => f.stages) };
    }
  },
  // As Element's "Change password" sends it: the old password as the auth dict of the first request.
  async changePassword({ oldPassword, newPassword, logoutDevices }) {
    await client.setPassword({ type: "m.login.password", password: oldPassword,
                               identifier: { type: "m.id.user", user: client.getUserIdLocalpart() } },
                             newPassword, logoutDevices);
    return {};
  },
  async search({ term }) {
    const r = await client.searchRoomEvents({ term });
    return { count: r.count ?? null, highlights: r.highlights,
             bodies: r.results.map((res) => res.context.getEvent().getContent().body ?? null) };
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
  async roomState({ roomId }) {
    const room = client.getRoom(roomId);
    const topic = room?.currentState.getStateEvents("m.room.topic", "")?.getContent().topic ?? null;
    return { name: room?.name ?? null, topic, timelineEnd: room?.getLiveTimeline().getEvents().at(-1)?.getId() ?? null };
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
  async setRoomTag({ roomId, tag, order }) {
    await client.setRoomTag(roomId, tag, order === undefined ? {} : { order });
    return {};
  },
  async deleteRoomTag({ roomId, tag }) { await client.deleteRoomTag(roomId, tag); return {}; },
  async getRoomTags({ roomId }) { return { tags: (await client.getRoomTags(roomId)).tags }; },
  async searchUserDirectory({ term, limit }) {
    const r = await client.searchUserDirectory({ term, limit });
    return { limited: r.limited, results: r.results };
  },
  async turnServer() { return { body: await client.turnServer() }; },
  async getThreePids() { return { body: await client.getThreePids() }; },
  async getOpenIdToken() { return { body: await client.getOpenIdToken() }; },
  async getSharedRooms({ userId }) { return { roomIds: await client._unstable_getSharedRooms(userId) }; },
  async setIgnoredUsers({ userIds }) { await client.setIgnoredUsers(userIds); return {}; },
  async fallbackAuthUrl({ baseUrl, loginType, session }) {
    return { url: sdk.createClient({ baseUrl }).getFallbackAuthUrl(loginType, session) };
  },
  async getThirdpartyProtocols() { return { body: await client.getThirdpartyProtocols() }; },
  async peek({ roomId }) {
    const room = await client.peekInRoom(roomId);
    return { bodies: room.getLiveTimeline().getEvents().map((e) => e.getContent().body ?? null).filter((b) => b),
             name: room.name };
  },
  async stop() { client?.stopClient(); setTimeout(() => process.exit(0), 50); return {}; },
};

serve(handlers, () => { client?.stopClient(); });
