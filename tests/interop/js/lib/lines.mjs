// What the js-libp2p test peers (peer.mjs, gossip_peer.mjs, mdns_peer.mjs) share: JSON lines on stdout,
// option parsing, the Ed25519 identity from --seed, connection events, the connection manager settings
// for a loaded test machine, the stdin command loop with its result/error lines, and the process's
// fatal-error exit.
import { createInterface } from 'node:readline'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'

// One JSON line on stdout.
export function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// The error fields of a result line.
export function describeError (err) {
  return { ok: false, error: err?.message ?? String(err), code: err?.name ?? 'Error' }
}

// A usage error of script `name`: the message on stderr, exit 2.
export function usage (name, msg) {
  process.stderr.write(`${name}: ${msg}\n`)
  process.exit(2)
}

// Walks argv: `option(a, value)` handles option a (value() takes the next argument) and returns false
// for an option it does not know. --seed is checked to be 64 hex digits.
export function parseOptions (name, argv, option) {
  const fail = (msg) => usage(name, msg)
  let seed = null
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--seed') seed = value()
    else if (!option(a, value)) fail(`unknown option ${a}`)
  }
  if (seed !== null && !/^[0-9a-fA-F]{64}$/.test(seed)) fail('--seed needs 64 hex digits (32 bytes)')
  return { seed, fail }
}

// The Ed25519 identity from a 64-hex-digit seed, or a fresh one for null.
export async function keyFromSeed (seed) {
  return seed !== null
    ? generateKeyPairFromSeed('Ed25519', Uint8Array.from(Buffer.from(seed, 'hex')))
    : generateKeyPair('Ed25519')
}

// A command's target: a multiaddr text starting with "/", or a peer id text.
export function target (t) {
  if (typeof t !== 'string' || t === '') throw new Error('missing target (a multiaddr or a peer id)')
  return t.startsWith('/') ? multiaddr(t) : peerIdFromString(t)
}

// Emits connection:open / connection:close lines {peer, addr, direction} (and the connection id with
// withId).
export function emitConnectionEvents (node, { withId = false } = {}) {
  for (const event of ['connection:open', 'connection:close']) {
    node.addEventListener(event, (evt) => {
      const c = evt.detail
      const line = { event, peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction }
      if (withId) line.id = c.id
      emit(line)
    })
  }
}

const SLOW_MS = 120_000

// connectionManager settings for the test peers (peer.mjs, gossip_peer.mjs).
export function testConnectionManager () {
  return {
    maxConnections: 2000,
    // Loopback tests open connections in bursts (handshake loops, 200 idle connections): exempt them
    // from the per-host rate limit and the pending-connection cap.
    allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128'],
    maxIncomingPendingConnections: 1000,
    // The defaults (10 s) abort streams and handshakes on a loaded test machine: with 1000 streams
    // opened at once, each waits its turn for the peer store lock before its handler runs.
    dialTimeout: SLOW_MS,
    inboundUpgradeTimeout: SLOW_MS,
    outboundUpgradeTimeout: SLOW_MS,
    protocolNegotiationTimeout: SLOW_MS,
    inboundStreamProtocolNegotiationTimeout: SLOW_MS,
    outboundStreamProtocolNegotiationTimeout: SLOW_MS
  }
}

// The rss command: {rss_bytes} of this process (after a GC when node runs with --expose-gc).
export async function rss () {
  if (typeof globalThis.gc === 'function') globalThis.gc()
  return { rss_bytes: process.memoryUsage().rss }
}

// Reads JSON-line commands from stdin and answers each with one result line matched by id; `commands`
// maps a cmd to an async function of the command object returning the result fields. Commands run
// concurrently. {"cmd":"stop"}, stdin closing or SIGTERM stop the node, print the stop result and exit 0.
export function serveCommands (node, commands) {
  let stopping = false
  const stop = async (id) => {
    if (stopping) return
    stopping = true
    await node.stop()
    emit({ event: 'result', id, cmd: 'stop', ok: true })
    process.exit(0)
  }

  const rl = createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    let c
    try {
      c = JSON.parse(line)
    } catch (err) {
      emit({ event: 'result', id: null, cmd: null, ...describeError(new Error(`bad JSON: ${err.message}`)) })
      return
    }
    if (c.cmd === 'stop') {
      stop(c.id)
      return
    }
    const fn = commands[c.cmd]
    if (fn === undefined) {
      emit({ event: 'result', id: c.id ?? null, cmd: c.cmd ?? null, ok: false, error: `unknown command ${c.cmd}`, code: 'UnknownCommand' })
      return
    }
    fn(c).then(
      (r) => emit({ event: 'result', id: c.id ?? null, cmd: c.cmd, ok: true, ...r }),
      (err) => emit({ event: 'result', id: c.id ?? null, cmd: c.cmd, ...describeError(err) })
    )
  })
  rl.on('close', () => stop(null))
  process.on('SIGTERM', () => stop(null))
}

// Runs the script's async main; a failure goes to stderr with exit 1.
export function run (name, main) {
  main().catch((err) => {
    process.stderr.write(`${name}: ${err?.stack ?? err}\n`)
    process.exit(1)
  })
}
