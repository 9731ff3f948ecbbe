// libFuzzer target `mdns_packet`: one UDP datagram as it arrives on port 5353, through everything the
// plugin does with it - DNS parsing, the mDNS engine (query answering, known-answer suppression,
// announcement extraction) and the peer table (dnsaddr= multiaddrs, peer ids, the max_peers cap).
// Seed corpus: corpus/mdns_packet/ (queries and responses from chorus and js-libp2p, goodbyes, a
// compression loop). Run: <build>/fuzz/mdns_packet_fuzz corpus/mdns_packet
#include <cstddef>
#include <cstdint>
#include <span>

#include "dns.hpp"
#include "engine.hpp"

using namespace chorus::mdns;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Engine *engine = [] {
    auto *e = new Engine("p2p", "fuzzpeer0123456789012345678901234", 120);
    e->set_addrs({"/ip4/10.0.0.1/tcp/9000/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"});
    return e;
  }();
  static auto self = chorus::p2p::PeerId::parse("12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz", nullptr);
  static PeerTable *table = new PeerTable(*self, 64);
  static uint64_t now = 0;

  const std::span<const uint8_t> bytes(data, size);
  DnsMessage msg;
  std::string why;
  (void)parse_message(bytes, msg, &why);

  const PacketResult r = engine->handle(bytes, size > 0 && (data[0] & 1) ? 40000 : 5353, 5353, &why);
  for (const auto &a : r.announcements) {
    const PeerEntry *e = nullptr;
    PeerEntry removed;
    (void)table->apply(a, "10.0.0.2", now, &e, &removed, &why);
  }
  now += 1000;
  if (table->size() > 64) __builtin_trap();  // the cap must hold
  (void)table->expire(now);
  return 0;
}
