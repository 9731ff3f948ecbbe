// The server side of `<prefix>/kad/1.0.0`: length-prefixed requests in, replies out, several per
// stream and in order. A frame that is too large or does not decode resets the stream (counted in
// chorus_dht_frames_rejected_total). kad/handler answers each request; its durable part (PUT_VALUE,
// ADD_PROVIDER) is committed on the store thread and the stream's later requests wait for it, so
// replies keep their order.
#include <algorithm>

#include "node.hpp"
#include "node_internal.hpp"
#include "wire/varint.hpp"

namespace chorus::dht {


void Node::inbound_opened(uint64_t stream, const PeerId &peer) {
  if (stopping_.load()) return;
  auto in = std::make_unique<Inbound>();
  in->peer = peer;
  inbound_[stream] = std::move(in);
}

void Node::inbound_data(uint64_t stream, Bytes bytes) {
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  Inbound &in = *it->second;
  if (in.buf.empty()) in.buf = std::move(bytes);
  else in.buf.insert(in.buf.end(), bytes.begin(), bytes.end());
  parse_requests(stream);
}

void Node::reject_stream(uint64_t stream, const char *reason, const std::string &why) {
  m_.frames_rejected.inc(reason);
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  host_.debug("dht: reset the kad stream of " + it->second->peer.to_base58() + ": " + why);
  inbound_.erase(it);
  p2p_.table()->reset(p2p_.self(), stream);
}

void Node::parse_requests(uint64_t stream) {
  Limits limits;
  limits.max_value_bytes = s_.max_value_bytes;
  limits.max_message_bytes = s_.max_frame_bytes();
  for (;;) {
    auto it = inbound_.find(stream);
    if (it == inbound_.end()) return;
    Inbound &in = *it->second;
    if (in.busy) return;
    if (in.buf.empty()) {
      if (in.eof) p2p_.table()->close_write(p2p_.self(), stream);
      return;
    }
    uint64_t len = 0;
    size_t used = 0;
    const auto vs = p2p::read_uvarint(BytesView(in.buf), len, used);
    if (vs == p2p::VarintStatus::need_more) return;
    if (vs == p2p::VarintStatus::invalid) return reject_stream(stream, "bad_frame", "invalid length prefix");
    if (len > limits.max_message_bytes)
      return reject_stream(stream, "too_large", "a frame of " + std::to_string(len) + " bytes");
    if (in.buf.size() - used < len) return;
    std::string why;
    auto req = decode_message(BytesView(in.buf).subspan(used, len), limits, &why);
    in.buf.erase(in.buf.begin(), in.buf.begin() + static_cast<std::ptrdiff_t>(used + len));
    if (!req) return reject_stream(stream, "malformed", why);
    const PeerId from = in.peer;
    in.busy = true;
    const bool done_now = handle_request(from, std::move(*req), [this, stream](std::optional<Message> reply) {
      auto it = inbound_.find(stream);
      if (it == inbound_.end()) return;
      it->second->busy = false;
      if (reply) {
        const Bytes frame = encode_frame(*reply);
        if (p2p_.table()->write(p2p_.self(), stream, frame.data(), frame.size()) != CHORUS_OK) {
          inbound_.erase(it);
          p2p_.table()->reset(p2p_.self(), stream);
          return;
        }
      }
    });
    if (!done_now) return;  // the store thread resumes this stream
  }
}

void Node::resume_streams() {
  std::vector<uint64_t> ready;
  for (const auto &[stream, in] : inbound_)
    if (!in->busy) ready.push_back(stream);
  for (uint64_t stream : ready) parse_requests(stream);
}

bool Node::handle_request(const PeerId &from, Message req, std::function<void(std::optional<Message>)> reply) {
  const std::string type = message_type_name(req.type);
  // A request is evidence the peer is alive. One not in the table may be a server whose identify
  // predates its kad handler (identify runs when the connection opens, plugins start after), or one
  // we dropped during a partition: ask it soon (recheck_ limits how often per peer, and ignores a
  // peer that failed all its rechecks for refresh_interval_ms: a client-mode peer calls but never serves).
  if (table_->contains(from)) {
    table_->mark_seen(from, now_ms());
  } else {
    if (recheck_->kick(from, now_ms())) arm_recheck();
  }
  // The result label: the first refusal the handler counted for this request, else "ok".
  auto result_of = [this](const HandlerCounters &before) -> std::string {
    const HandlerCounters &after = handler_->counters();
    for (size_t i = 0; i < kRejectReasonCount; ++i)
      if (after.rejected[i] != before.rejected[i]) return reject_reason_name(static_cast<RejectReason>(i));
    return "ok";
  };
  const HandlerCounters before = handler_->counters();
  HandledRequest h = handler_->begin(from, req, wall_ms());
  if (!h.write) {
    m_.requests.inc(type, result_of(before));
    reply(std::move(h.reply));
    return true;
  }
  // The durable part on the store thread; the stream's later requests wait for it (reply order).
  auto write = std::make_shared<StoreWrite>(std::move(*h.write));
  auto outcome = std::make_shared<WriteOutcome>();
  store_then([this, write, outcome] { *outcome = RequestHandler::commit(*store_, handler_->validator(), *write); },
             [this, write, outcome, result_of, now_reply = std::move(h.reply), reply = std::move(reply), type,
              before](bool ok, const std::string &why) mutable {
               if (!ok) host_.warn("dht: a store write failed: " + why);
               std::optional<Message> due = handler_->finish(*write, *outcome);
               m_.requests.inc(type, result_of(before));
               reply(now_reply ? std::move(now_reply) : std::move(due));
               update_gauges();
               resume_streams();  // the stream may have more requests queued behind this one
             });
  return false;
}

}  // namespace chorus::dht
