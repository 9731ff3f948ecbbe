#!/usr/bin/env node
// A js-libp2p Kademlia DHT node for the dht plugin's interop tests and cluster benchmark.
//
// js-libp2p 2.10 (TCP + Noise + yamux + identify + ping, as peer.mjs) with @libp2p/kad-dht 15.1.11 as the
// `dht` service in server mode (clientMode false), protocol <prefix>/kad/1.0.0, and loopback/private
// addresses kept in what it learns and tells (peerInfoMapper = passthroughMapper: the library's default
// drops them, which would leave a loopback cluster without addresses). Record namespaces: `pk` (the
// library's validator) and `chorus`, checked here as the dht plugin checks it (docs/protocols.md, DHT):
//
//   value = ChorusRecord protobuf {1 author bytes, 2 seq uint64, 3 payload bytes, 4 signature bytes},
//           the four fields once each, in order, canonical encoding;
//   author = an Ed25519 peer id with the key inlined (identity multihash 00 24 08 01 12 20 || key);
//   signature = Ed25519 by author over "chorus-dht-record:" || uvarint(len(key)) || key || fields 1-3;
//   best = highest seq, then the larger payload bytes, then the larger value bytes.
//
// It is driven by JSON lines on stdin and reports JSON lines on stdout (stderr is for humans):
//
//   start:   {"event":"ready","peer_id","addrs":[...],"libp2p_version","kad_dht_version","protocol"}
//   events:  {"event":"connection:open"|"connection:close","peer","addr","direction"}
//            {"event":"peer:added"|"peer:removed","peer"} (the DHT routing table)
//   every command may carry "id"; its answer is one line
//            {"event":"result","id":...,"cmd":...,"ok":true,...} or {... "ok":false,"error":"why","code":"Name"}
//
// Keys are given as "key" (text, UTF-8) or "key_b64" (raw bytes, e.g. /pk/<binary peer id>). A "cid"
// is a CID text (bafy..., bafk..., Qm...): the DHT provides and finds its multihash.
//
// Commands:
//   {"cmd":"dial","target"}                     -> {peer, addr, direction} (a multiaddr or a peer id)
//   {"cmd":"put","key"|"key_b64","value_b64"}   -> {key_b64, stored_on: [peer ids that echoed the record],
//                                                   errors: {peer id: why}} (the value as is)
//   {"cmd":"put_chorus","key","payload_b64","seq"?}
//        -> {key_b64, value_b64, seq, stored_on, errors}: a ChorusRecord of payload signed by this node (seq default: the time
//           in ms), then put
//   {"cmd":"pk_record"}                          -> {key_b64, value_b64}: /pk/<own id> and own PublicKey
//   {"cmd":"chorus_record","key","payload_b64","seq"}  -> {value_b64}: signed, not put
//   {"cmd":"get","key"|"key_b64"}               -> {value_b64, from, chorus: {author, seq, payload_b64} | null}
//                                                  (the best value; NotFoundError when none)
//   {"cmd":"provide","cid"}                      -> {}
//   {"cmd":"find_providers","cid"}               -> {providers: [{peer_id, addrs}]} (every distinct one the
//                                                  lookup reports, until it ends)
//   {"cmd":"find_peer","peer"}                   -> {peer_id, addrs} (NotFoundError when the lookup fails)
//   {"cmd":"routing"}                            -> {size, peers: [peer ids in the routing table]}
//   {"cmd":"bench","op":"get"|"put","keys":[...],"value_b64"?,"concurrency"?}
//        -> runs op on every key (texts; put: value_b64 under each, /chorus/ keys signed as put_chorus),
//           concurrency at a time: {done, failed, first_error, elapsed_ms, ops_per_s, p50_ms, p95_ms,
//           p99_ms, queries_mean, latencies_ms (with "latencies":true)}; queries_mean = the kad requests
//           (SEND_QUERY events) per operation
//   {"cmd":"stop"}                               -> stops the node, prints the result, exits 0
//
// Options: --seed <64 hex> (fixed Ed25519 identity), --listen <multiaddr> (repeatable; default
// /ip4/127.0.0.1/tcp/0), --prefix P (protocol P/kad/1.0.0; default /ipfs), --k N (bucket size, default
// 20), --alpha N (default 3).
import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { publicKeyFromRaw, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { MessageType, kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { peerIdFromMultihash } from '@libp2p/peer-id'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { emit, emitConnectionEvents, keyFromSeed, parseOptions, run, serveCommands, target, testConnectionManager } from './lib/lines.mjs'

const enc = new TextEncoder()
const b64 = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('base64')
const fromB64 = (s) => Uint8Array.from(Buffer.from(s, 'base64'))

function parseArgs (argv) {
  const opts = { listen: [], prefix: '/ipfs', k: 20, alpha: 3 }
  const { seed, fail } = parseOptions('dht_peer.mjs', argv, (a, value) => {
    if (a === '--listen') opts.listen.push(value())
    else if (a === '--prefix') opts.prefix = value()
    else if (a === '--k') opts.k = Number(value())
    else if (a === '--alpha') opts.alpha = Number(value())
    else return false
    return true
  })
  opts.seed = seed
  if (!opts.prefix.startsWith('/')) fail('--prefix starts with /')
  for (const n of ['k', 'alpha']) {
    if (!(Number.isInteger(opts[n]) && opts[n] >= 1)) fail(`--${n} needs a positive integer`)
  }
  if (opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')
  return opts
}

// ---- protobuf and the /chorus/ record ------------------------------------------------------------------

function uvarint (n) {
  let v = BigInt(n)
  const out = []
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v !== 0n) b |= 0x80
    out.push(b)
  } while (v !== 0n)
  return out
}

// (value, next offset) of the uvarint at buf[i]; throws on a truncated or over-long one.
function readUvarint (buf, i) {
  let v = 0n
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (i >= buf.length) throw new Error('truncated varint')
    const b = buf[i++]
    v |= BigInt(b & 0x7f) << shift
    if ((b & 0x80) === 0) {
      if (v >= 1n << 64n) throw new Error('varint over 64 bits')
      return [v, i]
    }
  }
  throw new Error('varint too long')
}

const concat = (parts) => {
  const len = parts.reduce((s, p) => s + p.length, 0)
  const out = new Uint8Array(len)
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

const bytesField = (field, data) => concat([Uint8Array.from([(field << 3) | 2, ...uvarint(data.length)]), data])

function signedFields (author, seq, payload) {
  return concat([bytesField(1, author), Uint8Array.from([(2 << 3) | 0, ...uvarint(seq)]), bytesField(3, payload)])
}

function signingBytes (key, author, seq, payload) {
  return concat([enc.encode('chorus-dht-record:'), Uint8Array.from(uvarint(key.length)), key, signedFields(author, seq, payload)])
}

// The record's fields; throws unless value is exactly the canonical encoding of the four fields.
function decodeChorusRecord (value) {
  const fields = []
  let i = 0
  for (let want = 1; want <= 4; want++) {
    const [tag, j] = readUvarint(value, i)
    const wire = want === 2 ? 0 : 2
    if (tag !== BigInt((want << 3) | wire)) throw new Error(`chorus record: expected field ${want}`)
    if (wire === 0) {
      const [v, k] = readUvarint(value, j)
      fields.push(v)
      i = k
    } else {
      const [len, k] = readUvarint(value, j)
      if (BigInt(value.length - k) < len) throw new Error('chorus record: truncated field')
      fields.push(value.subarray(k, k + Number(len)))
      i = k + Number(len)
    }
  }
  if (i !== value.length) throw new Error('chorus record: trailing bytes')
  const [author, seq, payload, signature] = fields
  const canonical = concat([signedFields(author, seq, payload), bytesField(4, signature)])
  if (Buffer.compare(canonical, value) !== 0) throw new Error('chorus record: non-canonical encoding')
  return { author, seq, payload, signature }
}

const ED25519_ID_PREFIX = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])

async function validateChorus (key, value) {
  const r = decodeChorusRecord(value)
  if (r.author.length !== 38 || Buffer.compare(r.author.subarray(0, 6), ED25519_ID_PREFIX) !== 0) {
    throw new Error('chorus record: the author is not an Ed25519 peer id with the key inlined')
  }
  if (r.signature.length !== 64) throw new Error('chorus record: the signature is not 64 bytes')
  const pub = publicKeyFromRaw(r.author.subarray(6))
  if (!(await pub.verify(signingBytes(key, r.author, r.seq, r.payload), r.signature))) {
    throw new Error('chorus record: bad signature')
  }
}

// Highest seq, then the larger payload, then the larger value bytes (all unsigned lexicographic); a
// record that does not decode never wins.
function selectChorus (key, values) {
  let best = 0
  let bestRec = null
  values.forEach((v, i) => {
    let rec
    try { rec = decodeChorusRecord(v) } catch { return }
    let better
    if (bestRec === null) better = true
    else if (rec.seq !== bestRec.seq) better = rec.seq > bestRec.seq
    else if (Buffer.compare(rec.payload, bestRec.payload) !== 0) better = Buffer.compare(rec.payload, bestRec.payload) > 0
    else better = Buffer.compare(v, values[best]) > 0
    if (better) { best = i; bestRec = rec }
  })
  return best
}

// ---- the node ----------------------------------------------------------------------------------------

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const privateKey = await keyFromSeed(opts.seed)
  const version = (pkg) => JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version
  const protocol = `${opts.prefix}/kad/1.0.0`

  const node = await createLibp2p({
    privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol,
        clientMode: false,
        kBucketSize: opts.k,
        alpha: opts.alpha,
        peerInfoMapper: passthroughMapper,
        validators: { chorus: validateChorus },
        selectors: { chorus: selectChorus },
        // A query on a node with an empty routing table ends at once (nothing found) instead of
        // waiting for a first peer: the node that starts a cluster has nobody to ask yet.
        allowQueryWithZeroPeers: true
      })
    },
    connectionMonitor: { abortConnectionOnPingFailure: false },
    connectionManager: testConnectionManager()
  })
  const dht = node.services.dht
  const selfId = node.peerId.toMultihash().bytes

  emitConnectionEvents(node)
  dht.routingTable.addEventListener('peer:add', (evt) => emit({ event: 'peer:added', peer: evt.detail.toString() }))
  dht.routingTable.addEventListener('peer:remove', (evt) => emit({ event: 'peer:removed', peer: evt.detail.toString() }))

  emit({
    event: 'ready',
    peer_id: node.peerId.toString(),
    addrs: node.getMultiaddrs().map(ma => ma.toString()),
    libp2p_version: version('libp2p'),
    kad_dht_version: version('@libp2p/kad-dht'),
    protocol
  })

  const keyOf = (c) => {
    if (typeof c.key_b64 === 'string') return fromB64(c.key_b64)
    if (typeof c.key === 'string' && c.key !== '') return enc.encode(c.key)
    throw new Error('missing key (key text or key_b64)')
  }
  const cidOf = (c) => {
    if (typeof c.cid !== 'string') throw new Error('missing cid')
    return CID.parse(c.cid)
  }
  const needBytes = (c, field) => {
    if (typeof c[field] !== 'string') throw new Error(`missing ${field}`)
    return fromB64(c[field])
  }

  const chorusRecord = async (key, payload, seq) => {
    const s = BigInt(seq ?? Date.now())
    const sig = await privateKey.sign(signingBytes(key, selfId, s, payload))
    return { value: concat([signedFields(selfId, s, payload), bytesField(4, sig)]), seq: s }
  }

  // Runs one DHT query to its end; counts its kad requests.
  const drain = async (events, onEvent) => {
    let queries = 0
    for await (const e of events) {
      if (e.name === 'SEND_QUERY') queries++
      if (onEvent) onEvent(e)
    }
    return queries
  }

  // Puts and reports which peers echoed the record (stored it) and which failed.
  const put = async (key, value) => {
    const stored = new Set()
    const errors = new Map()
    const queries = await drain(dht.put(key, value), (e) => {
      if (e.name === 'PEER_RESPONSE' && (e.messageType === MessageType.PUT_VALUE || e.messageType === 'PUT_VALUE')) {
        stored.add(e.from.toString())
      } else if (e.name === 'QUERY_ERROR') {
        errors.set(e.from.toString(), e.error?.message ?? String(e.error))
      }
    })
    for (const p of errors.keys()) stored.delete(p)
    return { queries, stored_on: [...stored], errors: Object.fromEntries(errors) }
  }

  const get = async (key) => {
    let best = null
    const queries = await drain(dht.get(key), (e) => { if (e.name === 'VALUE') best = e })
    if (best === null) {
      const err = new Error('no value found')
      err.name = 'NotFoundError'
      throw err
    }
    return { best, queries }
  }

  const isChorusKey = (key) => Buffer.from(key.subarray(0, 8)).toString('latin1') === '/chorus/'

  const commands = {
    async dial (c) {
      const conn = await node.dial(target(c.target))
      return { peer: conn.remotePeer.toString(), addr: conn.remoteAddr.toString(), direction: conn.direction }
    },
    async put (c) {
      const key = keyOf(c)
      const r = await put(key, needBytes(c, 'value_b64'))
      return { key_b64: b64(key), stored_on: r.stored_on, errors: r.errors }
    },
    async chorus_record (c) {
      const { value, seq } = await chorusRecord(keyOf(c), needBytes(c, 'payload_b64'), c.seq)
      return { value_b64: b64(value), seq: seq.toString() }
    },
    async put_chorus (c) {
      const key = keyOf(c)
      const { value, seq } = await chorusRecord(key, needBytes(c, 'payload_b64'), c.seq)
      const r = await put(key, value)
      return { key_b64: b64(key), value_b64: b64(value), seq: seq.toString(), stored_on: r.stored_on, errors: r.errors }
    },
    async pk_record () {
      const key = concat([enc.encode('/pk/'), selfId])
      return { key_b64: b64(key), value_b64: b64(publicKeyToProtobuf(privateKey.publicKey)) }
    },
    async get (c) {
      const key = keyOf(c)
      const { best } = await get(key)
      let chorus = null
      if (isChorusKey(key)) {
        const r = decodeChorusRecord(best.value)
        chorus = { author: peerIdFromMultihash(Digest.decode(r.author)).toString(), seq: r.seq.toString(), payload_b64: b64(r.payload) }
      }
      return { value_b64: b64(best.value), from: best.from.toString(), chorus }
    },
    async provide (c) {
      await drain(dht.provide(cidOf(c)))
      return {}
    },
    async find_providers (c) {
      const found = new Map()
      await drain(dht.findProviders(cidOf(c)), (e) => {
        if (e.name !== 'PROVIDER') return
        for (const p of e.providers) {
          const id = p.id.toString()
          const addrs = new Set(found.get(id) ?? [])
          for (const ma of p.multiaddrs ?? []) addrs.add(ma.toString())
          found.set(id, [...addrs])
        }
      })
      return { providers: [...found].map(([peerId, addrs]) => ({ peer_id: peerId, addrs })) }
    },
    async find_peer (c) {
      const want = target(c.peer)
      if (want.multiaddrs !== undefined || typeof want.toMultihash !== 'function') throw new Error('find_peer takes a peer id')
      let found = null
      await drain(dht.findPeer(want), (e) => {
        if (e.name === 'FINAL_PEER' && e.peer.id.equals(want)) found = e.peer
      })
      if (found === null) {
        const err = new Error(`peer ${want} not found`)
        err.name = 'NotFoundError'
        throw err
      }
      return { peer_id: found.id.toString(), addrs: found.multiaddrs.map(ma => ma.toString()) }
    },
    async routing () {
      // The routing table's peers are not in the public interface (only its size): read the k-bucket
      // tree of this pinned version.
      const peers = [...dht.routingTable.kb.toIterable()].map(p => p.peerId.toString())
      return { size: dht.routingTable.size, peers }
    },
    async bench (c) {
      return bench(c)
    }
  }

  async function bench (c) {
    if (c.op !== 'get' && c.op !== 'put') throw new Error('op is get or put')
    if (!Array.isArray(c.keys) || c.keys.length === 0) throw new Error('keys: a non-empty list of key texts')
    const concurrency = c.concurrency ?? 8
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error('concurrency must be a positive integer')
    const value = c.op === 'put' ? needBytes(c, 'value_b64') : null
    const latencies = []
    let failed = 0
    let firstError = null
    let queries = 0
    let next = 0
    const one = async (text) => {
      const key = enc.encode(text)
      const t = performance.now()
      if (c.op === 'get') {
        queries += (await get(key)).queries
      } else {
        const v = isChorusKey(key) ? (await chorusRecord(key, value)).value : value
        queries += (await put(key, v)).queries
      }
      latencies.push(performance.now() - t)
    }
    const worker = async () => {
      while (next < c.keys.length) {
        const text = c.keys[next++]
        try { await one(text) } catch (err) { failed++; firstError ??= `${text}: ${err.message}` }
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: Math.min(concurrency, c.keys.length) }, worker))
    const elapsedMs = performance.now() - t0
    const sorted = [...latencies].sort((a, b) => a - b)
    return {
      done: latencies.length,
      failed,
      first_error: firstError,
      elapsed_ms: elapsedMs,
      ops_per_s: elapsedMs > 0 ? latencies.length / (elapsedMs / 1000) : 0,
      p50_ms: percentile(sorted, 0.5),
      p95_ms: percentile(sorted, 0.95),
      p99_ms: percentile(sorted, 0.99),
      queries_mean: latencies.length > 0 ? queries / latencies.length : null,
      latencies_ms: c.latencies === true ? latencies : undefined
    }
  }

  serveCommands(node, commands)
}

run('dht_peer.mjs', main)
