// Fuzzes multistream-select in both roles with arbitrary chunking. Invariants: consumed never exceeds
// the input, nothing is consumed once negotiation ends, a finished negotiation names one of our
// protocols, a failure carries a reason, and output stays proportional to input.
#include <cstdlib>
#include <string>
#include <vector>

#include "wire/multistream.hpp"

using namespace chorus::p2p;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const bool initiator = data[0] & 1;
  const size_t chunk = (data[0] >> 1) % 32 + 1;
  BytesView in(data + 1, size - 1);

  const std::vector<std::string> protos = {"/noise", "/yamux/1.0.0", "/ipfs/id/1.0.0"};
  Multistream m = initiator ? Multistream::initiator(protos) : Multistream::responder(protos);
  Bytes out;
  m.take_output(out);
  size_t total_out = out.size();

  while (!in.empty()) {
    size_t n = chunk < in.size() ? chunk : in.size();
    auto before = m.state();
    size_t consumed = 12345;
    auto st = m.feed(in.first(n), consumed);
    if (consumed > n) std::abort();
    if (before != Multistream::State::negotiating && consumed != 0) std::abort();
    if (st == Multistream::State::negotiating && consumed != n) std::abort();
    out.clear();
    m.take_output(out);
    total_out += out.size();
    in = in.subspan(consumed == 0 ? n : consumed);
    if (st != Multistream::State::negotiating && consumed < n) {
      // Bytes after the final message belong to the protocol; feeding them again changes nothing.
      size_t again = 1;
      if (m.feed(in, again) != st || again != 0) std::abort();
    }
  }

  if (m.state() == Multistream::State::done) {
    bool known = false;
    for (const auto &p : protos) known |= p == m.protocol();
    if (!known) std::abort();
  }
  if (m.state() == Multistream::State::failed && m.error().empty()) std::abort();
  // Each peer message (at least 2 bytes) triggers at most one reply of at most the ls listing.
  if (total_out > 200 + (size / 2 + 1) * 64) std::abort();
  return 0;
}
