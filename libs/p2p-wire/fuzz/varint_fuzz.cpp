// Fuzzes uvarint decoding and LpReader. Invariants: an accepted uvarint is the minimal encoding of its
// value; LpReader yields the same messages and the same final status however the input is chunked.
#include <cstdlib>
#include <string>
#include <vector>

#include "wire/varint.hpp"

using namespace chorus::p2p;

namespace {

struct Result {
  std::vector<Bytes> messages;
  LpStatus last = LpStatus::need_more;
};

Result read_all(BytesView data, size_t max_message, size_t chunk) {
  Result r;
  LpReader reader(max_message);
  Bytes scratch;
  while (!data.empty() && r.last == LpStatus::need_more) {
    size_t n = chunk < data.size() ? chunk : data.size();
    BytesView in = data.first(n);
    data = data.subspan(n);
    BytesView msg;
    LpStatus st;
    while ((st = reader.next(in, msg, scratch)) == LpStatus::message) {
      if (msg.size() > max_message) std::abort();
      r.messages.emplace_back(msg.begin(), msg.end());
    }
    if (st == LpStatus::need_more && !in.empty()) std::abort();  // need_more must consume everything
    r.last = st;
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max_message = data[0];
  size_t chunk = data[1] % 16 + 1;
  BytesView in(data + 2, size - 2);

  for (size_t max_bytes : {1u, 2u, 9u, 10u}) {
    uint64_t v = 0;
    size_t used = 0;
    if (read_uvarint(in, v, used, max_bytes) == VarintStatus::ok) {
      uint8_t buf[kMaxUvarintLen];
      size_t n = put_uvarint(v, buf);
      if (n != used || n > max_bytes || !std::equal(buf, buf + n, in.begin())) std::abort();
      if (uvarint_size(v) != n) std::abort();
    }
  }

  Result whole = read_all(in, max_message, in.size() + 1);
  Result chunked = read_all(in, max_message, chunk);
  if (whole.messages != chunked.messages || whole.last != chunked.last) std::abort();
  // Re-encoding the messages reproduces the consumed prefix of the input.
  Bytes again;
  for (const auto &m : whole.messages) append_lp(again, m);
  if (again.size() > in.size() || !std::equal(again.begin(), again.end(), in.begin())) std::abort();
  return 0;
}
