"""Helpers for the dht plugin's js interop suite and cluster benchmark (Python stdlib only), next to
dhttest.py (the agents):

  * DhtJsPeer - tests/interop/js/dht_peer.mjs (js-libp2p + @libp2p/kad-dht in server mode) as a child
    process driven by JSON lines (p2ptest.LinePeer);
  * js_missing_reason - why it cannot run here (a missing prerequisite: Skipped, failed under CI);
  * cid_v1_raw - CIDs for provider records (what a stock libp2p node provides is the CID's multihash);
  * b58decode / pk_key - binary peer ids and the /pk/<binary peer id> key;
  * b64 / unb64 - the js peer's byte fields.
"""
import base64
import hashlib
import os

import nodecheck
import p2ptest
from harness import missing

KAD_DHT_PACKAGE = "@libp2p/kad-dht"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

_js_reason = ()


def js_missing_reason():
    """Why dht_peer.mjs cannot run here (node missing or too old, `npm ci` not run), or None."""
    global _js_reason
    if _js_reason == ():
        r = nodecheck.missing_reason(p2ptest.NODE, KAD_DHT_PACKAGE)
        _js_reason = missing("js-libp2p", r) if r else None
    return _js_reason


def b58decode(text):
    n = 0
    for ch in text:
        n = n * 58 + B58.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def pk_key(peer_id):
    """The /pk/ key of a peer id text: b"/pk/" + the binary peer id."""
    return b"/pk/" + b58decode(peer_id)


def cid_v1_raw(data):
    """The CIDv1 text (base32, codec raw, sha2-256) of data, e.g. bafkrei..."""
    mh = b"\x12\x20" + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(b"\x01\x55" + mh).decode().lower().rstrip("=")


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text)


class DhtJsPeer(p2ptest.LinePeer):
    """js/dht_peer.mjs: a js-libp2p 2.10 node with @libp2p/kad-dht 15 in server mode."""

    label = "js dht peer"

    def __init__(self, *args, seed=None, listen=None, prefix=None, node_args=()):
        argv = [p2ptest.NODE, *node_args, os.path.join(p2ptest.JS_DIR, "dht_peer.mjs")]
        if seed:
            argv += ["--seed", seed]
        for ma in listen or []:
            argv += ["--listen", ma]
        if prefix:
            argv += ["--prefix", prefix]
        super().__init__(argv + list(args), p2ptest.JS_DIR)

    @staticmethod
    def _key(key):
        return {"key_b64": b64(key)} if isinstance(key, bytes) else {"key": key}

    def put(self, key, value, timeout=60):
        return self.ok("put", timeout=timeout, value_b64=b64(value), **self._key(key))

    def put_chorus(self, key, payload, seq=None, timeout=60):
        kw = {"seq": seq} if seq is not None else {}
        return self.ok("put_chorus", timeout=timeout, key=key, payload_b64=b64(payload), **kw)

    def get(self, key, timeout=60):
        """The get result line (check r["ok"]; r["value_b64"], r["chorus"])."""
        return self.call("get", timeout=timeout, **self._key(key))

    def provide(self, cid, timeout=60):
        return self.ok("provide", timeout=timeout, cid=cid)

    def providers(self, cid, timeout=60):
        """The set of provider peer ids find_providers reports."""
        return {p["peer_id"] for p in self.ok("find_providers", timeout=timeout, cid=cid)["providers"]}

    def find_peer(self, peer_id, timeout=60):
        return self.call("find_peer", timeout=timeout, peer=peer_id)

    def routing_peers(self):
        return set(self.ok("routing")["peers"])
