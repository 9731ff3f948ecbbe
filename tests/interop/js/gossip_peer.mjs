#!/usr/bin/env node
// A js-libp2p GossipSub node for the gossip plugin's interop tests and benchmarks.
//
// js-libp2p 2.10 (TCP + Noise + yamux + identify + ping, as peer.mjs) with @chainsafe/libp2p-gossipsub
// 14.1.2 as the `pubsub` service: allowPublishToZeroTopicPeers true (a publish nobody receives answers
// recipients [] instead of throwing), emitSelf false, fallbackToFloodsub true. docs/protocols.md (PubSub)
// has the wire facts and the differences between the js and go implementations this peer exposes.
//
// It is driven by JSON lines on stdin and reports JSON lines on stdout (stderr is for humans):
//
//   start:   {"event":"ready","peer_id","addrs":[...],"libp2p_version","gossipsub_version","sign_policy"}
//   events:  {"event":"connection:open"|"connection:close","peer","addr","direction"}
//            {"event":"subscription-change","peer","subscriptions":[{"topic","subscribe"}]}
//            {"event":"message","topic","from","seqno","msg_id","data_b64","type","propagation_source"}
//              (not for a topic a bench_receive is counting: at benchmark rates the lines would cost more
//              than the messages)
//   every command may carry "id"; its answer is one line
//            {"event":"result","id":...,"cmd":...,"ok":true,...} or {... "ok":false,"error":"why","code":"Name"}
//
// Commands (a "peer"/"target" is a multiaddr text starting with "/", or a peer id text):
//   {"cmd":"dial","target"}                   -> {peer, addr, direction}
//   {"cmd":"hangup","target"}                 -> {}
//   {"cmd":"subscribe","topic"}               -> {}
//   {"cmd":"unsubscribe","topic"}             -> {}
//   {"cmd":"publish","topic","data_b64"}      -> {recipients:[peer ids], msg_id}
//   {"cmd":"messages","topic"}                -> {messages:[{from, seqno, data_b64, type:"signed"|"unsigned",
//                                                 msg_id, propagation_source}]} (all delivered so far, in order;
//                                                 from/seqno are "" for unsigned messages, seqno is decimal)
//   {"cmd":"score","peer"}                    -> {score} (gossipsub's getScore)
//   {"cmd":"mesh","topic"}                    -> {peers:[peer ids in our mesh of topic]}
//   {"cmd":"subscribers","topic"}             -> {peers:[peer ids subscribed to topic]}
//   {"cmd":"pubsub_peers"}                    -> {peers:[{peer, protocol, topics:[...]}]} (peers with a pubsub stream)
//   {"cmd":"publish_many","topic","count","size","rate"}
//        -> publishes count messages of size bytes (bench payload: the first 8 bytes are the big-endian
//           microseconds since the Unix epoch at publish, then filler: a big-endian u64 message index, a
//           random u64 of this process, then bytes i & 0xff, as far as size reaches), rate messages per second (0 or
//           absent: as fast as publish completes, up to 64 in flight): {sent, failed, first_error, elapsed_ms}
//   {"cmd":"bench_receive","topic","count","timeout_ms"}
//        -> counts messages of topic arriving after the command (which first emits
//           {"event":"bench_receive:armed","id","topic"}: publish only after it) until count distinct ones
//           arrived or timeout_ms passed: {received, duplicates, elapsed_ms, msgs_per_s, p50_ms, p99_ms}.
//           Latency = arrival - the publish time in the payload. elapsed_ms runs from the earliest publish
//           time among the received messages to the last arrival; msgs_per_s = received / elapsed.
//           duplicates = messages whose payload (bench timestamp + filler) was seen before (gossipsub
//           itself should never deliver one twice).
//   {"cmd":"rss"}                             -> {rss_bytes} (after a GC when node runs with --expose-gc)
//   {"cmd":"stop"}                            -> stops the node, prints the result, exits 0
//
// Options: --seed <64 hex> (fixed Ed25519 identity), --listen <multiaddr> (repeatable; default
// /ip4/127.0.0.1/tcp/0), --sign-policy StrictSign|StrictNoSign (default StrictSign), --topic T
// (repeatable, subscribed at start), --msg-id js|go (js: PublicKey protobuf || seqno, the library's
// default; go: from || seqno; StrictNoSign always uses sha256(data)), --score (topic scoring for every
// subscribed topic with the gossip plugin's default parameters and thresholds; without it the library's
// defaults apply, which score no topic), --d N (mesh degree; D_lo = round(2N/3), D_hi = 2N),
// --protocols P1,P2,... (the pubsub protocol ids offered and accepted, in preference order, instead of
// /meshsub/1.2.0, 1.1.0, 1.0.0 and /floodsub/1.0.0: e.g. /floodsub/1.0.0 alone makes a floodsub peer).
import { readFileSync } from 'node:fs'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { createTopicScoreParams } from '@chainsafe/libp2p-gossipsub/score'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { emit, emitConnectionEvents, keyFromSeed, parseOptions, rss, run, serveCommands, target, testConnectionManager } from './lib/lines.mjs'

const PUBLISH_WINDOW = 64

// The gossip plugin's default scoring (plugins/gossip/src/score.hpp), so a js node with --score judges
// peers as our agents do: P1 small and positive, P2 positive, P3/P3b off (quiet topics are normal), P4
// strongly negative.
const OUR_TOPIC_SCORE = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 3600,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.5,
  firstMessageDeliveriesCap: 2000,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 1,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -100,
  invalidMessageDeliveriesDecay: 0.3
}
const OUR_SCORE = {
  topicScoreCap: 100,
  appSpecificWeight: 1,
  IPColocationFactorWeight: -10,
  IPColocationFactorThreshold: 10,
  behaviourPenaltyWeight: -10,
  behaviourPenaltyThreshold: 0,
  behaviourPenaltyDecay: 0.9,
  decayInterval: 1000,
  decayToZero: 0.01,
  retainScore: 3600 * 1000
}
const OUR_THRESHOLDS = {
  gossipThreshold: -10,
  publishThreshold: -50,
  graylistThreshold: -80,
  acceptPXThreshold: 10,
  opportunisticGraftThreshold: 1
}

function parseArgs (argv) {
  const opts = { listen: [], signPolicy: 'StrictSign', topics: [], msgId: 'js', score: false, d: null, protocols: null }
  const { seed, fail: usage } = parseOptions('gossip_peer.mjs', argv, (a, value) => {
    if (a === '--listen') opts.listen.push(value())
    else if (a === '--sign-policy') opts.signPolicy = value()
    else if (a === '--topic') opts.topics.push(value())
    else if (a === '--msg-id') opts.msgId = value()
    else if (a === '--score') opts.score = true
    else if (a === '--d') opts.d = Number(value())
    else if (a === '--protocols') opts.protocols = value().split(',').filter(p => p !== '')
    else return false
    return true
  })
  opts.seed = seed
  if (opts.signPolicy !== 'StrictSign' && opts.signPolicy !== 'StrictNoSign') usage('--sign-policy is StrictSign or StrictNoSign')
  if (opts.msgId !== 'js' && opts.msgId !== 'go') usage('--msg-id is js or go')
  if (opts.d !== null && !(Number.isInteger(opts.d) && opts.d >= 1)) usage('--d needs a positive integer')
  const known = ['/meshsub/1.2.0', '/meshsub/1.1.0', '/meshsub/1.0.0', '/floodsub/1.0.0']
  if (opts.protocols !== null && (opts.protocols.length === 0 || opts.protocols.some(p => !known.includes(p)))) {
    usage(`--protocols takes a comma-separated list of ${known.join(', ')}`)
  }
  if (opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')
  return opts
}

const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex')
const b64 = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('base64')

// go-libp2p-pubsub's DefaultMsgIdFn: the `from` bytes (the binary peer id) followed by the seqno bytes.
function goMsgId (msg) {
  if (msg.type !== 'signed') throw new Error('--msg-id go needs signed messages')
  const from = msg.from.toMultihash().bytes
  const seqno = new Uint8Array(8)
  new DataView(seqno.buffer).setBigUint64(0, msg.sequenceNumber)
  const id = new Uint8Array(from.length + 8)
  id.set(from, 0)
  id.set(seqno, from.length)
  return id
}

const nowMicros = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000))

// Makes every bench payload unique (a content-addressed message id under StrictNoSign would otherwise
// merge two messages published in the same microsecond), also across js processes publishing at once.
const BENCH_NONCE = BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 53)) ^ BigInt(process.pid))
let benchIndex = 0n

function benchPayload (size) {
  const buf = new Uint8Array(size)
  for (let i = 24; i < buf.length; i++) buf[i] = i & 0xff
  const view = new DataView(buf.buffer)
  view.setBigUint64(0, nowMicros())
  if (size >= 16) view.setBigUint64(8, benchIndex++)
  if (size >= 24) view.setBigUint64(16, BENCH_NONCE)
  return buf
}

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
  return sorted[i]
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const privateKey = await keyFromSeed(opts.seed)
  const version = (pkg) => JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version

  const pubsubInit = {
    globalSignaturePolicy: opts.signPolicy,
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    fallbackToFloodsub: true,
    msgIdToStrFn: hex,
    // Our agents run on one loopback address with the js nodes; keep inbound/outbound limits generous.
    maxInboundStreams: 64,
    maxOutboundStreams: 64
  }
  if (opts.signPolicy === 'StrictSign' && opts.msgId === 'go') pubsubInit.msgIdFn = goMsgId
  if (opts.d !== null) {
    pubsubInit.D = opts.d
    pubsubInit.Dlo = Math.max(1, Math.min(opts.d, Math.round(opts.d * 2 / 3)))
    pubsubInit.Dhi = opts.d * 2
  }
  if (opts.score) {
    pubsubInit.scoreParams = { ...OUR_SCORE, topics: {} }
    for (const t of opts.topics) pubsubInit.scoreParams.topics[t] = createTopicScoreParams(OUR_TOPIC_SCORE)
    pubsubInit.scoreThresholds = OUR_THRESHOLDS
  }

  const node = await createLibp2p({
    start: false, // the pubsub protocol list may change before the service registers it
    privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping(), pubsub: gossipsub(pubsubInit) },
    // As in peer.mjs: a slow keep-alive ping on a loaded machine must not abort a healthy connection.
    connectionMonitor: { abortConnectionOnPingFailure: false },
    connectionManager: testConnectionManager()
  })
  const pubsub = node.services.pubsub
  // gossipsub registers its handlers and topology for `multicodecs` when the node starts, and opens its
  // outbound streams proposing them in this order.
  if (opts.protocols !== null) pubsub.multicodecs = [...opts.protocols]

  emitConnectionEvents(node)
  pubsub.addEventListener('subscription-change', (evt) => {
    const d = evt.detail
    emit({
      event: 'subscription-change',
      peer: d.peerId.toString(),
      subscriptions: d.subscriptions.map(s => ({ topic: s.topic, subscribe: s.subscribe }))
    })
  })

  const received = new Map() // topic -> [message records]
  const benches = new Map()  // topic -> the running bench_receive's collector
  pubsub.addEventListener('gossipsub:message', (evt) => {
    const { msg, msgId, propagationSource } = evt.detail
    const bench = benches.get(msg.topic)
    if (bench !== undefined) {
      bench.arrive(msg.data)
      return
    }
    const signed = msg.type === 'signed'
    const rec = {
      topic: msg.topic,
      from: signed ? msg.from.toString() : '',
      seqno: signed ? msg.sequenceNumber.toString() : '',
      msg_id: msgId,
      data_b64: b64(msg.data),
      type: msg.type,
      propagation_source: propagationSource.toString()
    }
    const list = received.get(msg.topic) ?? []
    list.push(rec)
    received.set(msg.topic, list)
    emit({ event: 'message', ...rec })
  })

  const scoreTopic = (topic) => {
    if (opts.score && pubsub.score.params.topics[topic] === undefined) {
      pubsub.score.params.topics[topic] = createTopicScoreParams(OUR_TOPIC_SCORE)
    }
  }

  await node.start()
  for (const t of opts.topics) pubsub.subscribe(t)
  emit({
    event: 'ready',
    peer_id: node.peerId.toString(),
    addrs: node.getMultiaddrs().map(ma => ma.toString()),
    libp2p_version: version('libp2p'),
    gossipsub_version: version('@chainsafe/libp2p-gossipsub'),
    sign_policy: opts.signPolicy
  })

  const needTopic = (c) => {
    if (typeof c.topic !== 'string' || c.topic === '') throw new Error('missing topic')
    return c.topic
  }

  const commands = {
    async dial (c) {
      const conn = await node.dial(target(c.target))
      return { peer: conn.remotePeer.toString(), addr: conn.remoteAddr.toString(), direction: conn.direction }
    },
    async hangup (c) {
      await node.hangUp(target(c.target))
      return {}
    },
    async subscribe (c) {
      const topic = needTopic(c)
      scoreTopic(topic)
      pubsub.subscribe(topic)
      return {}
    },
    async unsubscribe (c) {
      pubsub.unsubscribe(needTopic(c))
      return {}
    },
    async publish (c) {
      const topic = needTopic(c)
      if (typeof c.data_b64 !== 'string') throw new Error('missing data_b64')
      const r = await pubsub.publish(topic, Uint8Array.from(Buffer.from(c.data_b64, 'base64')))
      return { recipients: r.recipients.map(p => p.toString()) }
    },
    async messages (c) {
      return { messages: received.get(needTopic(c)) ?? [] }
    },
    async score (c) {
      if (typeof c.peer !== 'string') throw new Error('missing peer')
      return { score: pubsub.getScore(c.peer) }
    },
    async mesh (c) {
      return { peers: pubsub.getMeshPeers(needTopic(c)) }
    },
    async subscribers (c) {
      return { peers: pubsub.getSubscribers(needTopic(c)).map(p => p.toString()) }
    },
    async pubsub_peers () {
      const topics = new Map()
      for (const [topic, peers] of pubsub.topics) {
        for (const p of peers) topics.set(p, [...(topics.get(p) ?? []), topic])
      }
      return {
        peers: pubsub.getPeers().map(p => {
          const s = p.toString()
          return { peer: s, protocol: pubsub.streamsOutbound.get(s)?.protocol ?? null, topics: topics.get(s) ?? [] }
        })
      }
    },
    async publish_many (c) {
      return publishMany(pubsub, needTopic(c), c.count ?? 1, c.size ?? 1024, c.rate ?? 0)
    },
    async bench_receive (c) {
      const topic = needTopic(c)
      if (benches.has(topic)) throw new Error(`a bench_receive on ${topic} is already running`)
      const count = c.count ?? 1
      if (!Number.isInteger(count) || count < 1) throw new Error('count must be a positive integer')
      const bench = new BenchCollector(count)
      benches.set(topic, bench)
      emit({ event: 'bench_receive:armed', id: c.id ?? null, topic })
      try {
        return await bench.wait(c.timeout_ms ?? 60_000)
      } finally {
        benches.delete(topic)
      }
    },
    rss
  }

  // Commands run concurrently; answers are matched by id.
  serveCommands(node, commands)
}

// publish_many: `count` bench payloads; with a rate, message i leaves at t0 + i / rate (never earlier);
// without, as fast as publish completes with PUBLISH_WINDOW publishes in flight.
async function publishMany (pubsub, topic, count, size, rate) {
  if (!Number.isInteger(count) || count < 1) throw new Error('count must be a positive integer')
  if (!Number.isInteger(size) || size < 8) throw new Error('size must be an integer >= 8 (the timestamp)')
  if (typeof rate !== 'number' || rate < 0) throw new Error('rate must be a number >= 0 (0: unpaced)')
  let sent = 0
  let failed = 0
  let firstError = null
  const inFlight = new Set()
  const t0 = performance.now()
  for (let i = 0; i < count; i++) {
    if (rate > 0) {
      const due = t0 + (i * 1000) / rate
      const ahead = due - performance.now()
      if (ahead > 1) await new Promise(resolve => setTimeout(resolve, ahead))
    }
    const p = pubsub.publish(topic, benchPayload(size)).then(
      () => { sent++ },
      (err) => { failed++; firstError ??= err.message }
    ).finally(() => inFlight.delete(p))
    inFlight.add(p)
    if (inFlight.size >= PUBLISH_WINDOW) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  return { sent, failed, first_error: firstError, elapsed_ms: performance.now() - t0 }
}

class BenchCollector {
  constructor (count) {
    this.count = count
    this.latencies = []
    this.seen = new Set()
    this.duplicates = 0
    this.earliestSentUs = null
    this.lastArrivalUs = null
    this.done = null
  }

  arrive (data) {
    const arrivalUs = nowMicros()
    if (data.length < 8) return
    const key = b64(data)
    if (this.seen.has(key)) {
      this.duplicates++
      return
    }
    this.seen.add(key)
    const sentUs = new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(0)
    if (this.earliestSentUs === null || sentUs < this.earliestSentUs) this.earliestSentUs = sentUs
    this.lastArrivalUs = arrivalUs
    this.latencies.push(Number(arrivalUs - sentUs) / 1000)
    if (this.latencies.length >= this.count && this.done !== null) this.done()
  }

  async wait (timeoutMs) {
    if (this.latencies.length < this.count) {
      await new Promise(resolve => {
        const timer = setTimeout(resolve, timeoutMs)
        this.done = () => { clearTimeout(timer); resolve() }
      })
    }
    const received = this.latencies.length
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const elapsedMs = received > 0 ? Number(this.lastArrivalUs - this.earliestSentUs) / 1000 : 0
    return {
      received,
      duplicates: this.duplicates,
      elapsed_ms: elapsedMs,
      msgs_per_s: elapsedMs > 0 ? received / (elapsedMs / 1000) : 0,
      p50_ms: percentile(sorted, 0.5),
      p99_ms: percentile(sorted, 0.99)
    }
  }
}

run('gossip_peer.mjs', main)
