#!/usr/bin/env node
// A js-libp2p node with @libp2p/mdns, for the mdns plugin's interop test and benchmark
// (plugins/mdns/tests/test_mdns_js.py). TCP + Noise + yamux + identify + ping + mDNS discovery.
//
// js-libp2p 2.x only reports what @libp2p/mdns finds (peer:discovery); it does not dial by itself
// (docs/protocols.md, The js-libp2p reference peer). With --dial this node dials every discovered peer.
//
// Output: JSON lines on stdout (stderr is for humans):
//   {"event":"ready","peer_id","addrs":[...]}
//   {"event":"peer:discovery","peer","addrs":[...]}
//   {"event":"dial","peer","ok":true|false,"error"?}
//   {"event":"connection:open"|"connection:close","peer","addr","direction"}
// It stops cleanly (mDNS stops, connections close) on SIGTERM or when stdin closes.
//
// Options: --seed <64 hex> (fixed Ed25519 identity), --listen <multiaddr> (default /ip4/0.0.0.0/tcp/0),
// --service-tag <tag> (service _<tag>._udp.local; default p2p), --interval <ms> (query interval,
// default 1000), --dial.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { emit, emitConnectionEvents, keyFromSeed, parseOptions, run } from './lib/lines.mjs'

function parseArgs (argv) {
  const opts = { listen: [], tag: 'p2p', interval: 1000, dial: false }
  const { seed, fail: usage } = parseOptions('mdns_peer.mjs', argv, (a, value) => {
    if (a === '--listen') opts.listen.push(value())
    else if (a === '--service-tag') opts.tag = value()
    else if (a === '--interval') opts.interval = Number(value())
    else if (a === '--dial') opts.dial = true
    else return false
    return true
  })
  opts.seed = seed
  if (!(opts.interval > 0)) usage('--interval needs a positive number of milliseconds')
  if (opts.listen.length === 0) opts.listen.push('/ip4/0.0.0.0/tcp/0')
  return opts
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const privateKey = await keyFromSeed(opts.seed)
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [mdns({ serviceTag: `_${opts.tag}._udp.local`, interval: opts.interval })],
    services: { identify: identify(), ping: ping() },
    connectionMonitor: { abortConnectionOnPingFailure: false }
  })

  emitConnectionEvents(node)
  node.addEventListener('peer:discovery', (evt) => {
    const { id, multiaddrs } = evt.detail
    const peer = id.toString()
    emit({ event: 'peer:discovery', peer, addrs: multiaddrs.map((m) => m.toString()) })
    if (!opts.dial || node.getConnections(id).length > 0) return
    node.dial(id).then(
      () => emit({ event: 'dial', peer, ok: true }),
      (err) => emit({ event: 'dial', peer, ok: false, error: String(err?.message ?? err) })
    )
  })

  await node.start()
  emit({ event: 'ready', peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map((m) => m.toString()) })

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await node.stop()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.resume()
}

run('mdns_peer.mjs', main)
