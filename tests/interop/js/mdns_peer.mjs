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
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

function usage (msg) {
  process.stderr.write(`mdns_peer.mjs: ${msg}\n`)
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { seed: null, listen: [], tag: 'p2p', interval: 1000, dial: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--seed') opts.seed = value()
    else if (a === '--listen') opts.listen.push(value())
    else if (a === '--service-tag') opts.tag = value()
    else if (a === '--interval') opts.interval = Number(value())
    else if (a === '--dial') opts.dial = true
    else usage(`unknown option ${a}`)
  }
  if (opts.seed !== null && !/^[0-9a-fA-F]{64}$/.test(opts.seed)) usage('--seed needs 64 hex digits')
  if (!(opts.interval > 0)) usage('--interval needs a positive number of milliseconds')
  if (opts.listen.length === 0) opts.listen.push('/ip4/0.0.0.0/tcp/0')
  return opts
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const privateKey = opts.seed !== null
    ? await generateKeyPairFromSeed('Ed25519', Uint8Array.from(Buffer.from(opts.seed, 'hex')))
    : await generateKeyPair('Ed25519')
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

  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    emit({ event: 'connection:open', peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction })
  })
  node.addEventListener('connection:close', (evt) => {
    const c = evt.detail
    emit({ event: 'connection:close', peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction })
  })
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

main().catch((err) => {
  process.stderr.write(`mdns_peer.mjs: ${err?.stack ?? err}\n`)
  process.exit(1)
})
