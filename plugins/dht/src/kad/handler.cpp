#include "kad/handler.hpp"

#include <chorus/time_text.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace chorus::dht {

const char *reject_reason_name(RejectReason r) {
  switch (r) {
    case RejectReason::kEmptyKey: return "empty_key";
    case RejectReason::kKeyTooLong: return "key_too_long";
    case RejectReason::kMissingRecord: return "missing_record";
    case RejectReason::kKeyMismatch: return "key_mismatch";
    case RejectReason::kValueTooLarge: return "value_too_large";
    case RejectReason::kInvalidRecord: return "invalid_record";
    case RejectReason::kStaleRecord: return "stale_record";
    case RejectReason::kInvalidStoredRecord: return "invalid_stored_record";
    case RejectReason::kForeignProvider: return "foreign_provider";
    case RejectReason::kProviderWithoutAddrs: return "provider_without_addrs";
    case RejectReason::kProviderRateLimited: return "provider_rate_limited";
    case RejectReason::kProviderLimit: return "provider_limit";
    case RejectReason::kStoreError: return "store_error";
    case RejectReason::kUnknownType: return "unknown_type";
  }
  return "unknown";
}

std::string rfc3339_utc(int64_t ms) { return chorus::rfc3339_utc_ms(ms); }

namespace {

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Bytes a length-delimited field of len bytes takes (one-byte tag: every field number here is < 16).
size_t field_size(size_t len) { return 1 + varint_size(len) + len; }

// Encoded size of a PeerEntry as an element of closerPeers / providerPeers.
size_t peer_entry_size(const PeerEntry &e) {
  size_t body = field_size(e.id.size());
  for (const Bytes &a : e.addrs) body += field_size(a.size());
  if (e.connection != ConnectionType::kNotConnected) body += 2;
  return field_size(body);
}

}  // namespace

RequestHandler::RequestHandler(const PeerId &self, RecordStore &store, ClosestPeersFn closest, ContactFn contact,
                               RecordValidator validator, HandlerOptions options)
    : self_(self),
      store_(store),
      closest_(std::move(closest)),
      contact_(std::move(contact)),
      validator_(std::move(validator)),
      options_(options) {}

HandledRequest RequestHandler::begin(const PeerId &sender, const Message &request, int64_t now_ms) {
  const auto type = static_cast<size_t>(request.type);
  if (type >= kMessageTypeCount) {
    reject(RejectReason::kUnknownType);
    return {};
  }
  ++counters_.requests[type];
  HandledRequest out;
  try {
    switch (request.type) {
      case MessageType::kFindNode: out.reply = find_node(sender, request); break;
      case MessageType::kGetValue: out = get_value(sender, request, now_ms); break;
      case MessageType::kPutValue: out = put_value(request, now_ms); break;
      case MessageType::kAddProvider: out = add_provider(sender, request, now_ms); break;
      case MessageType::kGetProviders: out.reply = get_providers(sender, request, now_ms); break;
      case MessageType::kPing: out.reply.emplace().type = MessageType::kPing; break;
    }
  } catch (const StoreError &) {
    // A read failed: answer nothing rather than a reply that pretends we hold nothing.
    reject(RejectReason::kStoreError);
    return {};
  }
  if (out.reply) ++counters_.replies[type];
  return out;
}

WriteOutcome RequestHandler::commit(RecordStore &store, const RecordValidator &validator, const StoreWrite &write) {
  WriteOutcome out;
  try {
    if (write.remove_key) store.remove_record(*write.remove_key);
    if (write.record) {
      StoredRecord record = *write.record;
      // Selection happens here, against what is stored now: two PUTs of one key begun before either
      // was committed must not let the worse one land last.
      if (std::optional<StoredRecord> stored = store.get_record(record.key, record.received_ms)) {
        record.local = stored->local;  // our own key stays ours to republish, with the better value
        if (stored->value != record.value && validator.validate(record.key, stored->value, nullptr) &&
            validator.select(record.key, {record.value, stored->value}) != 0) {
          out.record_stale = true;
          return out;
        }
      }
      store.put_record(record);
      out.record_stored = true;
    }
    for (const ProviderRecord &p : write.providers) {
      if (store.add_provider(p))
        ++out.providers_stored;
      else
        ++out.providers_refused;
    }
  } catch (const StoreError &) {
    out.store_error = true;
  }
  return out;
}

std::optional<Message> RequestHandler::finish(const StoreWrite &write, const WriteOutcome &outcome) {
  counters_.records_stored += outcome.record_stored ? 1 : 0;
  counters_.providers_stored += outcome.providers_stored;
  if (outcome.record_stale) reject(RejectReason::kStaleRecord);
  if (outcome.providers_refused != 0) reject(RejectReason::kProviderLimit, outcome.providers_refused);
  if (outcome.store_error) reject(RejectReason::kStoreError);
  if (!outcome.record_stored || !write.reply) return std::nullopt;
  ++counters_.replies[static_cast<size_t>(write.type)];
  return write.reply;
}

std::optional<Message> RequestHandler::handle(const PeerId &sender, const Message &request, int64_t now_ms) {
  HandledRequest h = begin(sender, request, now_ms);
  if (!h.write) return std::move(h.reply);
  std::optional<Message> later = finish(*h.write, commit(store_, validator_, *h.write));
  return h.reply ? std::move(h.reply) : std::move(later);
}

std::vector<PeerEntry> RequestHandler::closer_peers(const PeerId &requester, BytesView key) {
  const size_t want = std::min(options_.k, options_.max_peers_per_reply);
  std::vector<PeerEntry> out;
  if (want == 0) return out;
  // Ask for a few more than needed (the requester and we ourselves may be among them), and more again
  // while peers without addresses leave the reply short and the table has more to give.
  const size_t most = 16 * want + 2;
  for (size_t ask = want + 2;; ask = std::min(most, ask * 2)) {
    out.clear();
    std::vector<PeerId> known = closest_(KadId::of_key(key), ask);
    for (const PeerId &p : known) {
      if (out.size() == want) break;
      if (p == requester || p == self_ || p.empty()) continue;
      PeerContact c = contact_(p);
      if (c.addrs.empty()) continue;  // nobody could dial it
      if (c.addrs.size() > options_.max_addrs_per_peer) c.addrs.resize(options_.max_addrs_per_peer);
      out.push_back(PeerEntry{p.bytes(), std::move(c.addrs), c.connection});
    }
    if (out.size() == want || known.size() < ask || ask == most) break;
  }
  return out;
}

std::optional<Message> RequestHandler::find_node(const PeerId &sender, const Message &req) {
  if (req.key.empty()) {
    reject(RejectReason::kEmptyKey);
    return std::nullopt;
  }
  Message reply;
  reply.type = MessageType::kFindNode;
  reply.key = req.key;
  reply.closer_peers = closer_peers(sender, req.key);
  // The target itself first when we can reach it (it may be a client-mode peer absent from the table,
  // or ourselves): that is the answer a FIND_NODE for a peer wants.
  if (std::optional<PeerId> target = PeerId::from_bytes(req.key, nullptr); target && *target != sender) {
    bool listed = std::any_of(reply.closer_peers.begin(), reply.closer_peers.end(),
                              [&](const PeerEntry &e) { return e.id == target->bytes(); });
    if (!listed) {
      PeerContact c = contact_(*target);
      if (!c.addrs.empty()) {
        if (c.addrs.size() > options_.max_addrs_per_peer) c.addrs.resize(options_.max_addrs_per_peer);
        reply.closer_peers.insert(reply.closer_peers.begin(), PeerEntry{target->bytes(), std::move(c.addrs),
                                                                        c.connection});
        size_t cap = std::min(options_.k, options_.max_peers_per_reply);
        if (reply.closer_peers.size() > cap) reply.closer_peers.resize(cap);
      }
    }
  }
  return reply;
}

HandledRequest RequestHandler::get_value(const PeerId &sender, const Message &req, int64_t now_ms) {
  if (req.key.empty()) {
    reject(RejectReason::kEmptyKey);
    return {};
  }
  HandledRequest out;
  Message &reply = out.reply.emplace();
  reply.type = MessageType::kGetValue;
  reply.key = req.key;
  if (std::optional<StoredRecord> stored = store_.get_record(req.key, now_ms)) {
    // Validity can change after storing (a validator grew stricter, a namespace was dropped).
    if (validator_.validate(req.key, stored->value, nullptr)) {
      reply.record = Record{req.key, std::move(stored->value), rfc3339_utc(stored->received_ms)};
    } else {
      reject(RejectReason::kInvalidStoredRecord);
      out.write.emplace().type = MessageType::kGetValue;
      out.write->remove_key = req.key;
    }
  }
  reply.closer_peers = closer_peers(sender, req.key);
  return out;
}

HandledRequest RequestHandler::put_value(const Message &req, int64_t now_ms) {
  if (req.key.empty()) {
    reject(RejectReason::kEmptyKey);
    return {};
  }
  if (!req.record) {
    reject(RejectReason::kMissingRecord);
    return {};
  }
  const Record &rec = *req.record;
  if (rec.key != req.key) {
    reject(RejectReason::kKeyMismatch);
    return {};
  }
  if (rec.value.size() > options_.max_value_bytes) {
    reject(RejectReason::kValueTooLarge);
    return {};
  }
  if (!validator_.validate(req.key, rec.value, nullptr)) {
    reject(RejectReason::kInvalidRecord);
    return {};
  }
  // Whether it beats the stored record is decided in commit(), against the store as it is then.
  HandledRequest out;
  StoreWrite &w = out.write.emplace();
  w.type = MessageType::kPutValue;
  w.record = StoredRecord{req.key, rec.value, now_ms, 0, false};
  w.reply = req;  // the echo is the acknowledgement js waits for
  return out;
}

bool RequestHandler::take_provider_token(const PeerId &sender, int64_t now_ms) {
  const double burst = options_.provider_burst;
  auto refill = [&](TokenBucket &b) {
    if (now_ms > b.updated_ms) {
      b.tokens = std::min(burst, b.tokens + static_cast<double>(now_ms - b.updated_ms) / 1000.0 *
                                                options_.provider_refill_per_s);
      b.updated_ms = now_ms;
    }
  };
  auto it = provider_buckets_.find(sender);
  if (it == provider_buckets_.end()) {
    if (provider_buckets_.size() >= std::max<size_t>(1, options_.max_tracked_senders)) {
      // A full bucket is the same as a fresh one: forget those first.
      for (auto b = provider_buckets_.begin(); b != provider_buckets_.end();) {
        refill(b->second);
        b = b->second.tokens >= burst ? provider_buckets_.erase(b) : std::next(b);
      }
      if (provider_buckets_.size() >= std::max<size_t>(1, options_.max_tracked_senders)) {
        auto fullest = std::max_element(provider_buckets_.begin(), provider_buckets_.end(),
                                        [](const auto &a, const auto &b) { return a.second.tokens < b.second.tokens; });
        provider_buckets_.erase(fullest);
      }
    }
    it = provider_buckets_.emplace(sender, TokenBucket{burst, now_ms}).first;
  }
  refill(it->second);
  if (it->second.tokens < 1.0) return false;
  it->second.tokens -= 1.0;
  return true;
}

HandledRequest RequestHandler::add_provider(const PeerId &sender, const Message &req, int64_t now_ms) {
  if (req.key.empty()) {
    reject(RejectReason::kEmptyKey);
    return {};
  }
  if (req.key.size() > options_.max_provider_key_bytes) {
    reject(RejectReason::kKeyTooLong);
    return {};
  }
  StoreWrite w;
  w.type = MessageType::kAddProvider;
  for (const PeerEntry &entry : req.provider_peers) {
    // Only the sender speaks for itself: anyone else's id would let a peer announce on others' behalf.
    if (entry.id != sender.bytes()) {
      reject(RejectReason::kForeignProvider);
      continue;
    }
    if (entry.addrs.empty()) {
      reject(RejectReason::kProviderWithoutAddrs);
      continue;
    }
    if (!take_provider_token(sender, now_ms)) {
      reject(RejectReason::kProviderRateLimited);
      continue;
    }
    ProviderRecord record{req.key, entry.id, entry.addrs, now_ms, 0};
    if (record.addrs.size() > options_.max_addrs_per_peer) record.addrs.resize(options_.max_addrs_per_peer);
    w.providers.push_back(std::move(record));
  }
  HandledRequest out;  // ADD_PROVIDER has no reply
  if (!w.providers.empty()) out.write = std::move(w);
  return out;
}

std::optional<Message> RequestHandler::get_providers(const PeerId &sender, const Message &req, int64_t now_ms) {
  if (req.key.empty()) {
    reject(RejectReason::kEmptyKey);
    return std::nullopt;
  }
  if (req.key.size() > options_.max_provider_key_bytes) {
    reject(RejectReason::kKeyTooLong);
    return std::nullopt;
  }
  Message reply;
  reply.type = MessageType::kGetProviders;
  reply.key = req.key;
  reply.closer_peers = closer_peers(sender, req.key);

  size_t size = 2 + field_size(reply.key.size());
  for (const PeerEntry &e : reply.closer_peers) size += peer_entry_size(e);
  // One more than fits tells whether the list was cut.
  std::vector<ProviderRecord> stored = store_.providers(req.key, now_ms, options_.max_peers_per_reply + 1);
  for (ProviderRecord &p : stored) {
    if (reply.provider_peers.size() == options_.max_peers_per_reply) break;
    PeerEntry e{std::move(p.provider), std::move(p.addrs), ConnectionType::kNotConnected};
    // A record stored without addresses (this node's own provide) gets the current ones.
    if (e.addrs.empty())
      if (std::optional<PeerId> id = PeerId::from_bytes(e.id, nullptr)) {
        PeerContact c = contact_(*id);
        e.addrs = std::move(c.addrs);
        e.connection = c.connection;
      }
    if (e.addrs.size() > options_.max_addrs_per_peer) e.addrs.resize(options_.max_addrs_per_peer);
    size_t entry = peer_entry_size(e);
    if (size + entry > options_.max_reply_bytes) break;
    size += entry;
    reply.provider_peers.push_back(std::move(e));
  }
  if (reply.provider_peers.size() < stored.size()) ++counters_.providers_truncated;
  return reply;
}

}  // namespace chorus::dht
