// Fuzzes multiaddr parsing, binary and text. Invariants: every accepted form prints to text that parses
// back to the same bytes; the helpers never crash and stay consistent with each other.
#include <cstdlib>
#include <string>

#include "wire/multiaddr.hpp"

using namespace chorus::p2p;

namespace {

void check(const Multiaddr &ma) {
  std::string text = ma.to_string();
  std::string why;
  auto again = Multiaddr::parse(text, &why);
  if (!again || again->bytes() != ma.bytes()) std::abort();
  auto from_bin = Multiaddr::from_bytes(ma.bytes(), &why);
  if (!from_bin || *from_bin != ma) std::abort();

  auto id = ma.peer_id();
  Multiaddr bare = ma.without_peer_id();
  if (id) {
    if (ma.with_peer_id(*id) != ma) std::abort();
    if (bare.bytes().size() >= ma.bytes().size()) std::abort();
  } else if (bare != ma) {
    std::abort();
  }
  if (!bare.empty() && !Multiaddr::from_bytes(bare.bytes(), &why)) std::abort();
  if (auto t = ma.tcp_target()) {
    if (t->host.empty()) std::abort();
    // IP targets convert back (zones are capped by from_tcp, so only check zone-less ones).
    bool ip = t->kind == Multiaddr::TcpTarget::ip4 || t->kind == Multiaddr::TcpTarget::ip6;
    if (ip && t->host.find('%') == std::string::npos) {
      Multiaddr rebuilt = Multiaddr::from_tcp(t->host, t->port);
      if (rebuilt.empty()) std::abort();
    }
  }
  size_t n = 0;
  for (const auto &c : ma.components()) n += c.value.size() + 1;
  if (n > ma.bytes().size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BytesView in(data, size);
  std::string why;
  if (auto ma = Multiaddr::from_bytes(in, &why)) {
    if (ma->bytes() != Bytes(in.begin(), in.end())) std::abort();
    check(*ma);
  } else if (why.empty()) {
    std::abort();  // every refusal says why
  }
  why.clear();
  if (auto ma = Multiaddr::parse(as_string_view(in), &why)) {
    check(*ma);
  } else if (why.empty()) {
    std::abort();
  }
  return 0;
}
