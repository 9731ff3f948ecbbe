// Signature checks on verifier threads, and the return of checked RPCs to the router in arrival
// order (node_internal.hpp lists the parts of the node).
#include "node_internal.hpp"

#include "signature.hpp"

namespace chorus::gossip {

// ---- signature verification ----

void Node::route_rpc(const PeerId &from, Rpc rpc) {
  if (verify_threads_.empty() || rpc.publish.empty()) return router_->handle_rpc(from, std::move(rpc));
  const uint64_t now = host_.now_ms();
  while (!verified_order_.empty() && verified_order_.front().first <= now) {
    verified_ids_.erase(verified_order_.front().second);
    verified_order_.pop_front();
  }
  bool all_known = true;
  for (const auto &m : rpc.publish) {
    if (verified_ids_.count(message_key(router_->message_id(m))) == 0) {
      all_known = false;
      break;
    }
  }
  if (all_known) return router_->handle_rpc(from, std::move(rpc));  // copies: no need to verify again
  size_t bytes = 0;
  for (const auto &m : rpc.publish) bytes += (m.data ? m.data->size() : 0) + kDecodedMessageOverhead;
  verifying_bytes_ += bytes;
  verify_batch_bytes_ += bytes;
  verify_batch_.push_back(VerifiedRpc{from, std::move(rpc), true, bytes});
  if (verify_batch_bytes_ >= kVerifyBatchBytes) send_verify_batch();
}

void Node::send_verify_batch() {
  if (verify_batch_.empty()) return;
  const uint64_t seq = verify_next_seq_++;
  std::vector<VerifiedRpc> batch;
  batch.swap(verify_batch_);
  verify_batch_bytes_ = 0;
  asio::post(verify_io_, [this, seq, batch = std::move(batch)]() mutable {
    std::string why;
    for (auto &v : batch)
      for (const auto &m : v.rpc.publish)
        if (check_message(m, SignaturePolicy::kStrictSign, true, &why)) {
          v.all_ok = false;  // the router verifies again and rejects it with the reason
          break;
        }
    post([this, seq, batch = std::move(batch)]() mutable { verified(seq, std::move(batch)); });
  });
}

void Node::verified(uint64_t seq, std::vector<VerifiedRpc> batch) {
  verify_done_.emplace(seq, std::move(batch));
  for (auto it = verify_done_.begin(); it != verify_done_.end() && it->first == verify_next_route_;
       it = verify_done_.erase(it), ++verify_next_route_) {
    for (VerifiedRpc &v : it->second) {
      verifying_bytes_ -= v.bytes;
      if (v.all_ok) {
        // Remembered for half the seen window, so the router still knows every id we skip for.
        const uint64_t expiry = host_.now_ms() + s_.router.seen_ttl_ms / 2;
        for (const auto &m : v.rpc.publish) {
          const MessageKey key = message_key(router_->message_id(m));
          if (verified_ids_.insert(key).second) verified_order_.emplace_back(expiry, key);
        }
      }
      auto p = peers_.find(v.from);
      if (p != peers_.end() && p->second->in_router) router_->handle_rpc(v.from, std::move(v.rpc), v.all_ok);
    }
  }
  // Streams paused for the verifiers' backlog may read again.
  for (auto &[stream, in] : inbound_)
    if (in->paused) update_read_pause(stream, *in);
}

}  // namespace chorus::gossip
