// Fuzzes identify decoding, peer id parsing and public key decoding. Invariants: an accepted identify
// message re-encodes to bytes that decode to the same message (and encode identically again); accepted
// peer ids and keys survive their text/binary round trips.
#include <cstdlib>
#include <string>

#include "wire/identify.hpp"
#include "wire/peer_id.hpp"
#include "wire/protobuf.hpp"

using namespace chorus::p2p;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BytesView in(data, size);
  std::string why;

  IdentifyMessage m;
  if (m.merge_from(in, &why)) {
    Bytes wire = m.encode();
    IdentifyMessage again;
    if (!again.merge_from(wire, &why) || !(again == m)) std::abort();
    if (again.encode() != wire) std::abort();
    if (m.listen_addrs.size() > kIdentifyMaxAddrs || m.protocols.size() > kIdentifyMaxProtocols) std::abort();
    // Merging the same message twice keeps scalars and doubles repeated fields (within bounds).
    IdentifyMessage twice = m;
    if (twice.merge_from(wire, &why) && twice.protocols.size() != 2 * m.protocols.size()) std::abort();
  } else {
    if (why.empty() || !(m == IdentifyMessage())) std::abort();
  }

  if (auto id = PeerId::from_bytes(in, &why)) {
    auto a = PeerId::parse(id->to_base58(), &why);
    auto b = PeerId::parse(id->to_cid(), &why);
    if (!a || !b || *a != *id || *b != *id) std::abort();
    if (auto key = id->ed25519_key()) {
      if (PeerId::from_ed25519(key->data()) != *id) std::abort();
    }
  }
  if (auto id = PeerId::parse(as_string_view(in), &why)) {
    if (!PeerId::from_bytes(id->bytes(), &why)) std::abort();
  }

  uint32_t type = 0;
  Bytes key;
  if (decode_public_key(in, type, key, &why)) {
    Bytes canonical;
    ProtoWriter w(canonical);
    w.varint(1, type);
    w.bytes(2, key);
    if (canonical != Bytes(in.begin(), in.end())) std::abort();
    PeerId id = PeerId::from_public_key(in);
    if (type == kKeyEd25519 && key.size() == 32) {
      if (id != PeerId::from_ed25519(key.data())) std::abort();
      auto embedded = id.ed25519_key();
      if (!embedded || !std::equal(embedded->begin(), embedded->end(), key.begin())) std::abort();
    }
  }
  return 0;
}
