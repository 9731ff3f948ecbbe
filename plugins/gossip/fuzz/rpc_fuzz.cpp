// Fuzzes the pubsub RPC decoder. Invariants: an accepted RPC re-encodes to bytes that decode to the same
// RPC and encode identically again; whatever tight limits accept, the defaults accept too, unchanged; a
// refusal always has a reason. Accepted messages also go through the signature checks and message ids
// (which must not crash on any field contents).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rpc.hpp"
#include "signature.hpp"

using namespace chorus::gossip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BytesView in(data, size);
  std::string why;
  RpcLimits defaults;
  auto rpc = decode_rpc(in, defaults, &why);
  if (!rpc) {
    if (why.empty()) std::abort();
  } else {
    Bytes wire = encode_rpc(*rpc);
    auto again = decode_rpc(wire, defaults, &why);
    if (!again || !(*again == *rpc)) std::abort();
    if (encode_rpc(*again) != wire) std::abort();
    Bytes frame;
    append_frame(frame, *rpc);
    if (frame.size() <= wire.size()) std::abort();
    for (const auto &m : rpc->publish) {
      (void)signing_bytes(m);
      (void)check_message(m, SignaturePolicy::kStrictSign, true, &why);
      (void)check_message(m, SignaturePolicy::kStrictNoSign, true, &why);
      (void)message_id(m, SignaturePolicy::kStrictSign, MessageIdFn::kFromSeqno);
      (void)message_id(m, SignaturePolicy::kStrictSign, MessageIdFn::kKeySeqno);
    }
  }

  RpcLimits tight;
  tight.max_rpc_bytes = 2048;
  tight.max_message_bytes = 64;
  tight.max_topic_bytes = 16;
  tight.max_subscriptions = 4;
  tight.max_messages = 4;
  tight.max_control_entries = 8;
  tight.max_message_ids = 8;
  tight.max_prune_peers = 2;
  tight.max_message_id_bytes = 16;
  std::string tight_why;
  auto small = decode_rpc(in, tight, &tight_why);
  if (!small && tight_why.empty()) std::abort();
  if (small && (!rpc || !(*small == *rpc))) std::abort();
  return 0;
}
