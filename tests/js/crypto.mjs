// A matrix-js-sdk client with its Rust crypto (WASM, in-memory store), driven over stdin/stdout with JSON
// lines like driver.mjs, for pocketserver's end-to-end encryption tests.
// Commands: {"id", "cmd", ...args}; replies: {"id", "ok", ...} or {"id", "error"}; SDK events: {"event", ...}.
import { out, passwordLogin, serve, waitPrepared } from "./harness.mjs";
// stdout carries the JSON lines: the SDK's and the WASM module's logging goes to stderr, only warnings and
// errors unless CRYPTO_DRIVER_DEBUG=<regular expression> is set (then also the debug lines matching it).
const toStderr = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
const debugFilter = process.env.CRYPTO_DRIVER_DEBUG ? new RegExp(process.env.CRYPTO_DRIVER_DEBUG) : null;
const debug = debugFilter ? (...args) => { if (debugFilter.test(args.map(String).join(" "))) toStderr(...args); } : () => {};
console.log = console.info = console.debug = console.trace = debug;
console.warn = console.error = toStderr;

const sdk = await import("matrix-js-sdk");
// The crypto API's events and helpers are not re-exported by the package index.
const { CryptoEvent, decodeRecoveryKey, VerificationPhase, VerificationRequestEvent, VerifierEvent } =
  await import("matrix-js-sdk/lib/crypto-api/index.js");
// The backup loop waits up to 10 s (at random) before each upload round; a test need not.
const { RustBackupManager } = await import("matrix-js-sdk/lib/rust-crypto/backup.js");
RustBackupManager.maxBackupLoopStartDelayMillis = 0;
const { RequestType } = await import("@matrix-org/matrix-sdk-crypto-wasm");

const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.CRYPTO_DRIVER_DEBUG ? "debug" : "warn", false);
let client = null;
let login = null;           // { user, password, user_id, device_id }
let secretStorageKey = null; // [keyId | null, raw private key] for getSecretStorageKey
const uia = [];             // what each authUploadDeviceSigningKeys round saw
let verification = null;    // { request, sas, done } of the interactive verification under way

function describe(event) {
  return { room_id: event.getRoomId(), type: event.getType(), sender: event.getSender(), event_id: event.getId(),
           wire_type: event.getWireType(), encrypted: event.isEncrypted(),
           decryption_failure: event.isDecryptionFailure(), failure_reason: event.decryptionFailureReason ?? null,
           body: event.getContent().body ?? null };
}

function watch(c) {
  c.on(sdk.RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
    if (toStartOfTimeline) return;
    out({ event: "timeline", ...describe(event) });
  });
  c.on(sdk.MatrixEventEvent.Decrypted, (event) => out({ event: "decrypted", ...describe(event) }));
  c.on(CryptoEvent.KeyBackupSessionsRemaining, (remaining) => out({ event: "backup_remaining", remaining }));
  c.on(CryptoEvent.KeyBackupFailed, (errcode) => out({ event: "backup_failed", errcode }));
  c.on(CryptoEvent.VerificationRequestReceived, (request) => {
    follow(request);
    out({ event: "verification_request", user_id: request.otherUserId, device_id: request.otherDeviceId ?? null });
  });
}

// Track an interactive verification: its phase changes, and once a SAS verifier exists, its emoji,
// which the test confirms on both sides ("They match"), as a user does in Element.
function follow(request) {
  verification = { request, sas: null, done: null };
  const onVerifier = () => {
    const verifier = request.verifier;
    if (!verifier || verification.done) return;
    verifier.on(VerifierEvent.ShowSas, (sas) => {
      verification.sas = sas;
      out({ event: "sas", emoji: sas.sas.emoji.map((e) => e[1]) });
    });
    verification.done = verifier.verify().then(() => "done", (err) => `failed: ${err?.message ?? err}`);
  };
  request.on(VerificationRequestEvent.Change, () => {
    out({ event: "verification_phase", phase: VerificationPhase[request.phase] });
    onVerifier();
  });
  onVerifier();
}

function crypto() {
  const c = client?.getCrypto();
  if (!c) throw new Error("crypto is not initialised");
  return c;
}

// Answers the user-interactive auth of /keys/device_signing/upload: first without auth (the server may
// let the first upload through), then, if the server answers 401 with flows, with the password.
async function authUploadDeviceSigningKeys(makeRequest) {
  try {
    await makeRequest(null);
    uia.push({ needed: false });
    return;
  } catch (err) {
    if (err?.httpStatus !== 401 || !err?.data?.flows) throw err;
    const flows = err.data.flows.map((f) => f.stages);
    uia.push({ needed: true, flows, session: err.data.session ?? null });
    await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: login.user },
                        password: login.password, session: err.data.session });
  }
}

// Every event of the room's live timeline, paginating back (/messages) until the room's creation.
async function scrollbackAll(room) {
  const timeline = room.getLiveTimeline();
  for (let i = 0; i < 50; i++) {
    if (timeline.getEvents().some((e) => e.getType() === "m.room.create")) break;
    if (!timeline.getPaginationToken(sdk.EventTimeline.BACKWARDS)) break;
    await client.scrollback(room, 5);
  }
  return timeline.getEvents();
}

const handlers = {
  async login({ baseUrl, user, password, recoveryKey, initialSyncLimit }) {
    const resp = await passwordLogin(sdk, baseUrl, user, password);
    login = { user, password, user_id: resp.user_id, device_id: resp.device_id };
    if (recoveryKey) secretStorageKey = [null, decodeRecoveryKey(recoveryKey)];
    client = sdk.createClient({
      baseUrl, accessToken: resp.access_token, userId: resp.user_id, deviceId: resp.device_id,
      cryptoCallbacks: {
        getSecretStorageKey: async ({ keys }) => {
          if (!secretStorageKey) return null;
          const keyId = secretStorageKey[0] ?? await client.secretStorage.getDefaultKeyId();
          return keyId && keys[keyId] ? [keyId, secretStorageKey[1]] : null;
        },
        cacheSecretStorageKey: (keyId, keyInfo, key) => { secretStorageKey = [keyId, key]; },
      },
    });
    await client.initRustCrypto({ useIndexedDB: false });
    watch(client);
    await client.startClient({ initialSyncLimit: initialSyncLimit ?? 20 });
    await waitPrepared(sdk, client);
    const own = await crypto().getOwnDeviceKeys();
    return { user_id: resp.user_id, device_id: resp.device_id, access_token: resp.access_token,
             ed25519: own.ed25519, curve25519: own.curve25519 };
  },
  async bootstrapCrossSigning({ reset }) {
    const before = uia.length;
    await crypto().bootstrapCrossSigning({ setupNewCrossSigning: !!reset, authUploadDeviceSigningKeys });
    const status = await crypto().getCrossSigningStatus();
    return { uia: uia.slice(before), ready: await crypto().isCrossSigningReady(), status,
             master: await crypto().getCrossSigningKeyId() };
  },
  async crossSigningStatus() {
    const device = await crypto().getDeviceVerificationStatus(login.user_id, login.device_id);
    return { ready: await crypto().isCrossSigningReady(), status: await crypto().getCrossSigningStatus(),
             master: await crypto().getCrossSigningKeyId(),
             device_cross_signed: device ? device.crossSigningVerified : null };
  },
  // Wait until this device has caught up with the server: a marker written to account data has come
  // back through /sync (so every earlier device_lists.changed has arrived), and no /keys/query is
  // pending or in flight (the Rust OlmMachine offers one for as long as a user's device list is dirty).
  async settle() {
    const marker = `${Date.now()}-${Math.random()}`;
    const seen = new Promise((resolve) => {
      const onData = (event) => {
        if (event.getType() === "org.pocketserver.test.settle" && event.getContent().marker === marker) {
          client.off(sdk.ClientEvent.AccountData, onData);
          resolve();
        }
      };
      client.on(sdk.ClientEvent.AccountData, onData);
    });
    await client.setAccountData("org.pocketserver.test.settle", { marker });
    await seen;
    const machine = client.getCrypto().olmMachine;
    for (let i = 0; i < 200; i++) {
      const requests = await machine.outgoingRequests();
      if (!requests.some((r) => r.type === RequestType.KeysQuery)) return { rounds: i };
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("a /keys/query stayed pending for 10 s");
  },
  async bootstrapSecretStorage() {
    let recoveryKey = null;
    await crypto().bootstrapSecretStorage({
      createSecretStorageKey: async () => {
        const key = await crypto().createRecoveryKeyFromPassphrase();
        recoveryKey = key.encodedPrivateKey;
        return key;
      },
      setupNewSecretStorage: true,
      setupNewKeyBackup: true,
    });
    const check = await crypto().checkKeyBackupAndEnable();
    return { recovery_key: recoveryKey, ready: await crypto().isSecretStorageReady(),
             status: await crypto().getSecretStorageStatus(),
             backup_version: await crypto().getActiveSessionBackupVersion(),
             backup_algorithm: check?.backupInfo?.algorithm ?? null,
             backup_trusted: check ? check.trustInfo.trusted : null };
  },
  async createEncryptedRoom({ name, invite }) {
    const r = await client.createRoom({
      name, invite: invite ?? [],
      initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    return { room_id: r.room_id };
  },
  async join({ roomId }) { await client.joinRoom(roomId); return {}; },
  async isEncrypted({ roomId }) { return { encrypted: await crypto().isEncryptionEnabledInRoom(roomId) }; },
  async send({ roomId, body }) {
    const r = await client.sendTextMessage(roomId, body);
    return { event_id: r.event_id };
  },
  async backupStatus() {
    const counts = await client.getCrypto().olmMachine?.roomKeyCounts?.();
    return { version: await crypto().getActiveSessionBackupVersion(),
             total: counts ? Number(counts.total) : null, backed_up: counts ? Number(counts.backedUp) : null };
  },
  async restoreFromRecoveryKey() {
    await crypto().loadSessionBackupPrivateKeyFromSecretStorage();
    const progress = [];
    const result = await crypto().restoreKeyBackup({ progressCallback: (p) => progress.push(p.stage) });
    return { total: result.total, imported: result.imported, stages: [...new Set(progress)],
             backup_version: await crypto().getActiveSessionBackupVersion(),
             has_backup_key: (await crypto().getSessionBackupPrivateKey()) !== null };
  },
  // "Verify this device with the recovery key": cross-signing private keys from secret storage, a
  // signature of this device by the self-signing key, then the key backup is trusted and used.
  async verifyWithRecoveryKey() {
    const before = uia.length;
    await crypto().bootstrapCrossSigning({ authUploadDeviceSigningKeys });
    const check = await crypto().checkKeyBackupAndEnable();
    return { uia: uia.slice(before), ready: await crypto().isCrossSigningReady(),
             status: await crypto().getCrossSigningStatus(),
             backup_trusted: check ? check.trustInfo.trusted : null,
             backup_version: await crypto().getActiveSessionBackupVersion() };
  },
  // The room's history as this device sees it, after scrolling back to the room's creation and
  // (re)trying the decryption of every encrypted event.
  async history({ roomId }) {
    const room = client.getRoom(roomId);
    if (!room) throw new Error(`unknown room ${roomId}`);
    const before = room.getLiveTimeline().getEvents().length;
    const events = await scrollbackAll(room);
    for (const event of events) {
      if (!event.isEncrypted()) continue;
      if (event.isDecryptionFailure()) await event.attemptDecryption(client.getCrypto(), { isRetry: true });
      else await client.decryptEventIfNeeded(event);
    }
    return { events: events.map(describe), live_before_scrollback: before };
  },
  // "Verify with another device": this device asks the user's other devices.
  async requestOwnVerification() {
    follow(await crypto().requestOwnUserVerification());
    return { phase: VerificationPhase[verification.request.phase] };
  },
  // "Verify user" in Element: a request sent as a message of the (encrypted) DM room with them.
  async requestUserVerification({ userId, roomId }) {
    follow(await crypto().requestVerificationDM(userId, roomId));
    return { phase: VerificationPhase[verification.request.phase] };
  },
  async userStatus({ userId }) {
    const status = await crypto().getUserVerificationStatus(userId);
    return { cross_signing_verified: status.isCrossSigningVerified(), verified: status.isVerified() };
  },
  async acceptVerification() {
    if (!verification) throw new Error("no verification request");
    await verification.request.accept();
    return { phase: VerificationPhase[verification.request.phase] };
  },
  async startSas() {
    if (!verification) throw new Error("no verification request");
    await verification.request.startVerification("m.sas.v1");
    return { phase: VerificationPhase[verification.request.phase] };
  },
  async confirmSas() {
    if (!verification?.sas) throw new Error("no SAS shown yet");
    await verification.sas.confirm();
    return { result: await verification.done };
  },
  async deviceStatus({ userId, deviceId }) {
    const status = await crypto().getDeviceVerificationStatus(userId, deviceId);
    return { verified: status ? status.isVerified() : null, cross_signed: status ? status.crossSigningVerified : null,
             locally: status ? status.localVerified : null };
  },
  async stop() { client?.stopClient(); setTimeout(() => process.exit(0), 50); return {}; },
};

serve(handlers, () => { client?.stopClient(); });
