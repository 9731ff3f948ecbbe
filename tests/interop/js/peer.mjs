#!/usr/bin/env node
// A js-libp2p reference peer for the chorus-agent interop tests and benchmarks.
//
// TCP + Noise + yamux + identify + ping (js-libp2p 2.10 on Node 20; docs/protocols.md, The js-libp2p
// reference peer),
// plus an echo protocol /chorus/echo/1.0.0 that sends every byte back and closes its write side at EOF,
// and a sink protocol /chorus/sink/1.0.0 that counts what arrives and, at EOF, answers the count as 8 bytes
// (unsigned, big-endian) and closes (the same protocol as the chorus probe, tests/plugins/p2p_probe).
//
// It is driven by JSON lines on stdin and reports JSON lines on stdout (stderr is for humans):
//
//   start:   {"event":"ready","peer_id":"12D3KooW...","addrs":["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW..."]}
//   events:  {"event":"connection:open"|"connection:close","peer","addr","direction","id"}
//            {"event":"identify","peer","protocols":[...],"agent_version","protocol_version",
//             "listen_addrs":[...],"observed_addr"}
//   every command may carry "id"; its answer is one line
//            {"event":"result","id":...,"cmd":...,"ok":true,...} or {... "ok":false,"error":"why","code":"Name"}
//
// Commands (a "peer"/"target" is a multiaddr text starting with "/", or a peer id text):
//   {"cmd":"dial","target"}                        -> {peer, addr, direction}
//   {"cmd":"hangup","target"}                      -> {}
//   {"cmd":"ping","target"}                        -> {rtt_ms}
//   {"cmd":"identify","target"}                    -> run identify now on the connection: {protocols, agent_version, ...}
//   {"cmd":"identified","peer"}                    -> the last identify result seen for the peer (from events)
//   {"cmd":"peers"}                                -> {peers:[{peer, addrs, connections}]}
//   {"cmd":"open","target","protocol"}             -> open a stream and negotiate protocol, then close it:
//                                                     {} or error (UnsupportedProtocolError = the remote said `na`)
//   {"cmd":"echo","target","streams":N,"bytes_per_stream":M}
//        -> N concurrent /chorus/echo/1.0.0 streams, each sends M deterministic pseudo-random bytes, reads the
//           echo back and compares sha256(sent) with sha256(received): {elapsed_ms, mbps, bytes, streams}
//           (mbps = payload megabytes (10^6) per second in one direction)
//   {"cmd":"send","target","streams":N,"bytes_per_stream":M}
//        -> raw throughput: N concurrent /chorus/sink/1.0.0 streams, each writes M bytes of one constant 64 KiB
//           buffer, closes its write side and checks the sink's 8-byte count == M; nothing is generated or
//           hashed on either side: {elapsed_ms, mbps, bytes, streams}
//   {"cmd":"handshakes","target","count":N}       -> N x (new connection + close): {count, elapsed_ms, per_second}
//   {"cmd":"connect_many","target","count":N}     -> N extra connections to one peer (force), kept open:
//                                                     {opened, errors, first_error}
//   {"cmd":"close_all"}                            -> closes every connection: {closed}
//   {"cmd":"rss"}                                  -> {rss_bytes} of this process (after a GC if exposed)
//   {"cmd":"stop"}                                 -> stops the node, prints the result, exits 0
//
// Options: --seed <64 hex> (fixed Ed25519 identity), --listen <multiaddr> (repeatable; default
// /ip4/127.0.0.1/tcp/0), --no-listen, --mdns (announce + discover, interval 1 s), --dial-discovered,
// --monitor-abort (js default: abort a connection whose 10-second keep-alive ping times out).
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { emit, emitConnectionEvents, keyFromSeed, parseOptions, rss, run, serveCommands, target, testConnectionManager } from './lib/lines.mjs'

const ECHO_PROTOCOL = '/chorus/echo/1.0.0'
const SINK_PROTOCOL = '/chorus/sink/1.0.0'
const CHUNK = 64 * 1024
// What the send client writes, over and over (zero bytes; Noise encrypts it anyway). Never modified, so
// yielding the same buffer again is safe.
const SEND_BUFFER = new Uint8Array(CHUNK)
// Enough for the 1000-concurrent-stream tests in both directions on one connection.
const MAX_STREAMS = 4096

function parseArgs (argv) {
  const opts = { listen: [], noListen: false, mdns: false, dialDiscovered: false, monitorAbort: false }
  const { seed } = parseOptions('peer.mjs', argv, (a, value) => {
    if (a === '--listen') opts.listen.push(value())
    else if (a === '--no-listen') opts.noListen = true
    else if (a === '--mdns') opts.mdns = true
    else if (a === '--dial-discovered') opts.dialDiscovered = true
    else if (a === '--monitor-abort') opts.monitorAbort = true
    else return false
    return true
  })
  opts.seed = seed
  if (opts.listen.length === 0 && !opts.noListen) opts.listen.push('/ip4/127.0.0.1/tcp/0')
  return opts
}

// Deterministic pseudo-random bytes: xorshift32 words, little-endian, seeded by the stream index, so a
// run is reproducible and a C++ client may produce the identical stream.
function * patternChunks (seedIndex, total) {
  let x = (0x9e3779b9 ^ Math.imul(seedIndex + 1, 0x85ebca6b)) >>> 0
  if (x === 0) x = 1
  let left = total
  while (left > 0) {
    const n = Math.min(CHUNK, left)
    const words = new Uint32Array(Math.ceil(n / 4))
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x >>>= 0
      x ^= x >>> 17
      x ^= x << 5; x >>>= 0
      words[i] = x
    }
    yield new Uint8Array(words.buffer, 0, n)
    left -= n
  }
}

function addrsOf (node) {
  return node.getMultiaddrs().map(ma => ma.toString())
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const privateKey = await keyFromSeed(opts.seed)
  const pkg = JSON.parse(readFileSync(new URL('./node_modules/libp2p/package.json', import.meta.url)))

  const services = { identify: identify(), ping: ping() }
  const peerDiscovery = []
  if (opts.mdns) {
    const { mdns } = await import('@libp2p/mdns')
    peerDiscovery.push(mdns({ interval: 1000 }))
  }
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })],
    peerDiscovery,
    services,
    // js-libp2p 2.x pings every connection every 10 s (/ipfs/ping/1.0.0) and by default ABORTS the
    // connection when a ping times out (adaptive timeout). On a loaded machine with a busy connection
    // that kills healthy transfers ("The operation was aborted due to timeout"), so the pings still run
    // but a slow one only logs, unless --monitor-abort restores the default.
    connectionMonitor: { abortConnectionOnPingFailure: opts.monitorAbort },
    connectionManager: testConnectionManager()
  })

  const identified = new Map() // peer id text -> last identify event
  emitConnectionEvents(node, { withId: true })
  node.addEventListener('peer:identify', (evt) => {
    const r = identifyToJson(evt.detail)
    identified.set(r.peer, r)
    emit({ event: 'identify', ...r })
  })
  if (opts.mdns) {
    node.addEventListener('peer:discovery', (evt) => {
      const d = evt.detail
      emit({ event: 'discovery', peer: d.id.toString(), addrs: d.multiaddrs.map(ma => ma.toString()) })
      if (opts.dialDiscovered) {
        node.dial(d.id).catch(err => emit({ event: 'discovery:dial-failed', peer: d.id.toString(), error: err.message }))
      }
    })
  }

  await node.handle(ECHO_PROTOCOL, ({ stream }) => {
    // sink pulls from source: the remote's window only reopens as fast as we echo (back-pressure).
    stream.sink(stream.source).catch(err => {
      process.stderr.write(`echo stream failed: ${err.stack}\n`)
      stream.abort(err)
    })
  }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })

  await node.handle(SINK_PROTOCOL, ({ stream }) => {
    sinkServer(stream).catch(err => {
      process.stderr.write(`sink stream failed: ${err.stack}\n`)
      stream.abort(err)
    })
  }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })

  await node.start()
  emit({ event: 'ready', peer_id: node.peerId.toString(), addrs: addrsOf(node), libp2p_version: pkg.version })

  const connectionTo = async (t) => node.dial(target(t))

  const commands = {
    async dial (c) {
      const conn = await connectionTo(c.target)
      return { peer: conn.remotePeer.toString(), addr: conn.remoteAddr.toString(), direction: conn.direction }
    },
    async hangup (c) {
      await node.hangUp(target(c.target))
      return {}
    },
    async ping (c) {
      const rtt = await node.services.ping.ping(target(c.target))
      return { rtt_ms: rtt }
    },
    async identify (c) {
      const conn = await connectionTo(c.target)
      return identifyToJson(await node.services.identify.identify(conn))
    },
    async identified (c) {
      const r = identified.get(c.peer)
      if (r === undefined) throw new Error(`no identify result for ${c.peer}`)
      return r
    },
    async peers () {
      const byPeer = new Map()
      for (const conn of node.getConnections()) {
        const p = conn.remotePeer.toString()
        const e = byPeer.get(p) ?? { peer: p, addrs: [], connections: 0 }
        e.addrs.push(conn.remoteAddr.toString())
        e.connections++
        byPeer.set(p, e)
      }
      return { peers: [...byPeer.values()] }
    },
    async open (c) {
      if (typeof c.protocol !== 'string') throw new Error('missing protocol')
      const conn = await connectionTo(c.target)
      const stream = await conn.newStream(c.protocol)
      await stream.close()
      return { protocol: stream.protocol }
    },
    async echo (c) {
      return echoClient(await connectionTo(c.target), c.streams ?? 1, c.bytes_per_stream ?? 1024)
    },
    async send (c) {
      return sendClient(await connectionTo(c.target), c.streams ?? 1, c.bytes_per_stream ?? 1024)
    },
    async handshakes (c) {
      const count = c.count ?? 10
      if (typeof c.target !== 'string' || !c.target.startsWith('/')) throw new Error('handshakes needs a multiaddr target')
      const ma = multiaddr(c.target)
      await node.hangUp(ma).catch(() => {})
      const t0 = performance.now()
      for (let i = 0; i < count; i++) {
        const conn = await node.dial(ma, { force: true })
        await conn.close()
      }
      const ms = performance.now() - t0
      return { count, elapsed_ms: ms, per_second: count / (ms / 1000) }
    },
    async connect_many (c) {
      const count = c.count ?? 1
      const ma = multiaddr(c.target)
      let opened = 0
      let errors = 0
      let firstError = null
      for (let i = 0; i < count; i++) {
        try {
          await node.dial(ma, { force: true })
          opened++
        } catch (err) {
          errors++
          firstError ??= err.message
        }
      }
      return { opened, errors, first_error: firstError, connections: node.getConnections().length }
    },
    async close_all () {
      const conns = node.getConnections()
      await Promise.all(conns.map(conn => conn.close().catch(err => conn.abort(err))))
      return { closed: conns.length }
    },
    rss
  }

  // Commands run concurrently; answers are matched by id.
  serveCommands(node, commands)
}

function identifyToJson (r) {
  return {
    peer: r.peerId.toString(),
    protocols: r.protocols,
    agent_version: r.agentVersion ?? null,
    protocol_version: r.protocolVersion ?? null,
    listen_addrs: r.listenAddrs.map(ma => ma.toString()),
    observed_addr: r.observedAddr?.toString() ?? null,
    signed_peer_record: r.signedPeerRecord != null
  }
}

async function echoOne (conn, index, bytes) {
  const stream = await conn.newStream(ECHO_PROTOCOL, { maxOutboundStreams: MAX_STREAMS })
  const sent = createHash('sha256')
  const received = createHash('sha256')
  let got = 0
  const source = (function * () {
    for (const chunk of patternChunks(index, bytes)) {
      sent.update(chunk)
      yield chunk
    }
  })()
  // sink closes our write side (FIN) when the source is exhausted; read concurrently.
  const writing = stream.sink(source)
  for await (const list of stream.source) {
    for (const part of list) {
      received.update(part)
      got += part.length
    }
  }
  await writing
  await stream.close()
  if (got !== bytes) throw new Error(`stream ${index}: echoed ${got} bytes, sent ${bytes}`)
  const a = sent.digest('hex')
  const b = received.digest('hex')
  if (a !== b) throw new Error(`stream ${index}: sha256 mismatch: sent ${a}, got back ${b}`)
}

async function sinkServer (stream) {
  let received = 0
  for await (const list of stream.source) received += list.byteLength
  const count = new Uint8Array(8)
  new DataView(count.buffer).setBigUint64(0, BigInt(received))
  await stream.sink([count]) // closes our write side after the count
}

async function sendOne (conn, index, bytes) {
  const stream = await conn.newStream(SINK_PROTOCOL, { maxOutboundStreams: MAX_STREAMS })
  const source = (function * () {
    for (let left = bytes; left > 0; left -= CHUNK) yield left >= CHUNK ? SEND_BUFFER : SEND_BUFFER.subarray(0, left)
  })()
  const writing = stream.sink(source)
  const answer = []
  let got = 0
  for await (const list of stream.source) {
    got += list.byteLength
    if (got > 8) throw new Error(`stream ${index}: the sink answered more than 8 bytes`)
    answer.push(list.subarray())
  }
  await writing
  await stream.close()
  if (got !== 8) throw new Error(`stream ${index}: closed before the sink's count arrived (${got} bytes)`)
  const count = Buffer.concat(answer).readBigUInt64BE(0)
  if (count !== BigInt(bytes)) throw new Error(`stream ${index}: the sink counted ${count} of ${bytes} bytes`)
}

// Runs `one(conn, index, bytes)` on N concurrent streams; the answer of the echo and send commands.
async function transfer (what, one, conn, streams, bytes) {
  if (!Number.isInteger(streams) || streams < 1 || streams > MAX_STREAMS) throw new Error(`streams must be 1..${MAX_STREAMS}`)
  if (!Number.isInteger(bytes) || bytes < 0) throw new Error('bytes_per_stream must be an integer >= 0')
  const t0 = performance.now()
  const results = await Promise.allSettled(Array.from({ length: streams }, (_, i) => one(conn, i, bytes)))
  const ms = performance.now() - t0
  const failed = results.filter(r => r.status === 'rejected')
  if (failed.length > 0) {
    const reasons = failed.slice(0, 5).map(r => r.reason?.message ?? String(r.reason))
    throw new Error(`${failed.length} of ${streams} ${what} streams failed: ${reasons.join('; ')}`)
  }
  const total = streams * bytes
  return { streams, bytes: total, elapsed_ms: ms, mbps: total / 1e6 / (ms / 1000) }
}

const echoClient = (conn, streams, bytes) => transfer('echo', echoOne, conn, streams, bytes)
const sendClient = (conn, streams, bytes) => transfer('send', sendOne, conn, streams, bytes)

run('peer.mjs', main)
