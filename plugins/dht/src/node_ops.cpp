// Lookups (the sans-I/O kad/query engine driven over RPCs), the operations of chorus.dht v1, the
// periodic tasks (refresh, republish, re-provide, sweep, bootstrap) and the health probe.
//
// Times: the routing table and lookups run on the host's monotonic clock (now_ms); the store keeps
// wall-clock times (wall_ms), which survive restarts.
#include <algorithm>
#include <future>
#include <unordered_set>

#include <boost/asio/post.hpp>
#include <chorus/services/dht_v1.h>
#include <nlohmann/json.hpp>

#include "node.hpp"
#include "node_internal.hpp"
#include "wire/multiaddr.hpp"

namespace chorus::dht {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

MessageType request_type(LookupKind kind) {
  switch (kind) {
    case LookupKind::kFindNode: return MessageType::kFindNode;
    case LookupKind::kGetValue: return MessageType::kGetValue;
    case LookupKind::kGetProviders: return MessageType::kGetProviders;
  }
  return MessageType::kFindNode;
}

std::string addr_text(BytesView binary) {
  auto ma = p2p::Multiaddr::from_bytes(binary, nullptr);
  return ma ? ma->to_string() : std::string();
}

// What a caller gets for a record: a /chorus/ record's payload, any other record's value as it is.
std::optional<Bytes> payload_of(BytesView key, const Bytes &value) {
  if (key_namespace(key) != Namespace::kChorus) return value;
  auto rec = decode_chorus_record(value, nullptr);
  if (!rec) return std::nullopt;
  return rec->payload;
}

Bytes to_bytes(const std::string &s) { return Bytes(s.begin(), s.end()); }

// put_value's completion data: how many peers acknowledged a copy (0: only this node holds it).
Bytes replicas_data(size_t n) { return to_bytes(json{{"replicas", n}}.dump()); }

}  // namespace

// ---- lookups ----

void Node::run_lookup(LookupKind kind, Bytes key, const KadId &target, uint64_t deadline_ms, LookupOptions options,
                      LookupDone done) {
  options.kind = kind;
  options.k = s_.k;
  options.alpha = s_.alpha;
  options.per_peer_timeout_ms = static_cast<int64_t>(s_.query_timeout_ms);
  options.deadline_ms = static_cast<int64_t>(std::min<uint64_t>(deadline_ms, s_.lookup_deadline_ms));
  const uint64_t id = ++last_lookup_;
  auto op = std::make_unique<LookupOp>();
  op->kind = kind;
  op->key = std::move(key);
  op->q = std::make_unique<Lookup>(self_, target, options, now_ms());
  op->q->seed(table_->closest(target, s_.k));
  op->done = std::move(done);
  op->wake = std::make_unique<asio::steady_timer>(io_);
  lookups_.emplace(id, std::move(op));
  drive(id);
}

void Node::drive(uint64_t id) {
  auto it = lookups_.find(id);
  if (it == lookups_.end()) return;
  LookupOp &op = *it->second;
  for (const PeerId &peer : op.q->next_requests(now_ms())) {
    Message req;
    req.type = request_type(op.kind);
    req.key = op.key;
    rpc(peer, std::move(req), true,
        [this, id, peer](std::optional<Message> reply, const std::string &) { lookup_reply(id, peer, std::move(reply)); });
  }
  it = lookups_.find(id);  // rpc never completes inline, but stay safe
  if (it == lookups_.end()) return;
  if (it->second->q->done()) return end_lookup(id);
  schedule_wakeup(*it->second);
}

void Node::schedule_wakeup(LookupOp &op) {
  const int64_t at = op.q->next_wakeup_ms();
  const int64_t delay = std::max<int64_t>(0, at - now_ms());
  op.wake->expires_after(std::chrono::milliseconds(delay));
  // Find this lookup's id again when the timer fires (the map owns op).
  uint64_t id = 0;
  for (const auto &[k, v] : lookups_)
    if (v.get() == &op) id = k;
  op.wake->async_wait([this, id](const boost::system::error_code &ec) {
    if (ec) return;
    auto it = lookups_.find(id);
    if (it == lookups_.end()) return;
    it->second->q->tick(now_ms());
    drive(id);
  });
}

std::vector<PeerId> Node::peers_of(const std::vector<PeerEntry> &entries) {
  std::vector<PeerId> out;
  for (const auto &e : entries) {
    auto id = PeerId::from_bytes(e.id, nullptr);
    if (!id || *id == self_) continue;
    std::vector<std::string> texts;
    for (const auto &a : e.addrs)
      if (auto t = addr_text(a); !t.empty()) texts.push_back(std::move(t));
    if (!texts.empty()) remember_addrs(*id, texts);
    out.push_back(std::move(*id));
  }
  return out;
}

void Node::lookup_reply(uint64_t id, const PeerId &peer, std::optional<Message> reply) {
  auto it = lookups_.find(id);
  if (it == lookups_.end()) return;
  LookupOp &op = *it->second;
  const int64_t now = now_ms();
  if (!reply) {
    op.q->on_failure(peer, now);
    // A server that does not answer leaves the table; recheck_ asks it again later (with backoff), so
    // a partition that heals without new connections does not leave it out for good.
    peer_lost(peer, "no_answer");
    return drive(id);
  }
  // It answered a kad request: it is a server.
  if (table_->add(peer, now) == RoutingTable::AddResult::kAdded) update_gauges();
  const std::vector<PeerId> closer = peers_of(reply->closer_peers);
  if (op.kind == LookupKind::kGetValue && reply->record && reply->record->key == op.key) {
    std::string why;
    if (reply->record->value.size() <= s_.max_value_bytes && validate_record(op.key, reply->record->value, &why))
      op.q->record_value(peer, reply->record->value);
    else
      host_.debug("dht: " + peer.to_base58() + " returned an invalid record: " + why);
  }
  if (op.kind == LookupKind::kGetProviders && !reply->provider_peers.empty()) {
    std::vector<FoundProvider> found;
    for (const auto &p : reply->provider_peers) {
      auto pid = PeerId::from_bytes(p.id, nullptr);
      if (!pid) continue;
      found.push_back(FoundProvider{*pid, p.addrs});
    }
    peers_of(reply->provider_peers);  // remembers their addresses
    op.q->record_providers(found);
  }
  op.q->on_reply(peer, closer, now);
  if (op.want && (peer == *op.want || std::find(closer.begin(), closer.end(), *op.want) != closer.end()) &&
      addrs_.count(*op.want) != 0)
    op.q->finish(now);
  drive(id);
}

void Node::end_lookup(uint64_t id) {
  auto it = lookups_.find(id);
  if (it == lookups_.end()) return;
  std::unique_ptr<LookupOp> op = std::move(it->second);
  lookups_.erase(it);
  op->wake->cancel();
  const LookupResult r = op->q->result();
  m_.lookups.inc(lookup_kind_name(op->kind), lookup_end_name(r.end));
  m_.lookup_seconds.observe(lookup_kind_name(op->kind), static_cast<double>(r.stats.elapsed_ms) / 1000.0);
  m_.lookup_hops.observe(lookup_kind_name(op->kind), static_cast<double>(r.stats.hops));
  op->done(r);
}

// ---- put ----

chorus_status Node::put_value(Bytes key, Bytes value, uint32_t timeout_ms, Done done, chorus_error *err) {
  if (auto st = check_record_key(key, err); st != CHORUS_OK) return st;
  if (value.size() > s_.max_value_bytes)
    return fail(err, CHORUS_E_TOO_LARGE, "dht: the value has " + std::to_string(value.size()) +
                                             " bytes, more than max_value_bytes (" + std::to_string(s_.max_value_bytes) + ")");
  if (key_namespace(key) != Namespace::kChorus) {
    std::string why;
    if (!validate_record(key, value, &why)) return fail(err, CHORUS_E_INVALID_ARG, "dht: the record is invalid: " + why);
  }
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("put_value", std::move(done), err,
                  [this, key = std::move(key), value = std::move(value), t](uint64_t op) mutable {
                    do_put(op, std::move(key), std::move(value), t);
                  });
}

void Node::do_put(uint64_t op_id, Bytes key, Bytes value, uint64_t timeout_ms) {
  arm_timeout(op_id, timeout_ms, "put_value");
  if (key_namespace(key) == Namespace::kChorus) {
    // Our signed record: seq above what we hold, and at least the time in ms (so a node that lost its
    // store still outranks its older records).
    uint64_t seq = static_cast<uint64_t>(wall_ms());
    if (auto cur = store_->get_record(key, wall_ms()))
      if (auto rec = decode_chorus_record(cur->value, nullptr); rec && rec->seq + 1 > seq) seq = rec->seq + 1;
    std::string why;
    auto signed_value = make_chorus_record(
        key, self_, seq, value,
        [this](BytesView data, uint8_t sig[64]) {
          return p2p_.table()->sign(p2p_.self(), data.data(), data.size(), sig) == CHORUS_OK;
        },
        &why);
    if (!signed_value) return complete(op_id, CHORUS_E_INTERNAL, "dht: cannot sign the record: " + why);
    if (signed_value->size() > s_.max_value_bytes)
      return complete(op_id, CHORUS_E_TOO_LARGE, "dht: the signed record exceeds max_value_bytes");
    value = std::move(*signed_value);
  }
  StoredRecord rec;
  rec.key = key;
  rec.value = value;
  rec.received_ms = wall_ms();
  rec.local = true;
  store_then([this, rec] { store_->put_record(rec); },
             [this, op_id, key = std::move(key), value = std::move(value), timeout_ms](bool ok, const std::string &why) mutable {
               update_gauges();
               if (!ok) return complete(op_id, CHORUS_E_IO, "dht: cannot store the record: " + why);
               replicate(op_id, std::move(key), std::move(value), timeout_ms);
             });
}

void Node::replicate(uint64_t op_id, Bytes key, Bytes value, uint64_t timeout_ms) {
  if (table_->size() == 0) {  // durable locally; nobody to tell
    note_replicas(key, 0, s_.replication);
    return complete(op_id, CHORUS_OK, "", replicas_data(0));
  }
  const KadId target = KadId::of_key(key);
  run_lookup(LookupKind::kFindNode, key, target, timeout_ms, {},
             [this, op_id, key, value = std::move(value)](const LookupResult &r) {
               std::vector<PeerId> targets = r.closest;
               if (targets.size() > s_.k) targets.resize(s_.k);
               if (targets.empty()) {  // nobody answered: local only
                 note_replicas(key, 0, s_.replication);
                 return complete(op_id, CHORUS_OK, "", replicas_data(0));
               }
               struct Tally {
                 size_t need, acks = 0, answered = 0, total;
               };
               auto tally = std::make_shared<Tally>(Tally{std::min(s_.replication, targets.size()), 0, 0, targets.size()});
               for (const PeerId &peer : targets) {
                 Message req;
                 req.type = MessageType::kPutValue;
                 req.key = key;
                 req.record = Record{key, value, ""};
                 rpc(peer, std::move(req), true, [this, op_id, tally, key, value](std::optional<Message> reply, const std::string &) {
                   ++tally->answered;
                   if (reply && reply->record && reply->record->value == value) ++tally->acks;
                   if (tally->acks == tally->need) {
                     note_replicas(key, tally->acks, tally->need);
                     return complete(op_id, CHORUS_OK, "", replicas_data(tally->acks));
                   }
                   if (tally->answered == tally->total && tally->acks < tally->need) {
                     note_replicas(key, tally->acks, s_.replication);
                     complete(op_id, CHORUS_E_UNAVAILABLE,
                              "dht: stored locally, but only " + std::to_string(tally->acks) + " of " +
                                  std::to_string(tally->total) + " peers accepted it (replication " +
                                  std::to_string(tally->need) + ")",
                              replicas_data(tally->acks));
                   }
                 });
               }
             });
}

// ---- get ----

chorus_status Node::get_value(Bytes key, uint32_t timeout_ms, Done done, chorus_error *err) {
  if (auto st = check_record_key(key, err); st != CHORUS_OK) return st;
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("get_value", std::move(done), err,
                  [this, key = std::move(key), t](uint64_t op) mutable { do_get(op, std::move(key), t); });
}

void Node::do_get(uint64_t op_id, Bytes key, uint64_t timeout_ms) {
  if (auto cur = store_->get_record(key, wall_ms()); cur && validate_record(key, cur->value, nullptr)) {
    if (auto p = payload_of(key, cur->value)) return complete(op_id, CHORUS_OK, "", *p);
  }
  // Values found on the network earlier stay in the local cache for cache_ttl_ms.
  if (auto cached = store_->cache_get(key, wall_ms()); cached && validate_record(key, *cached, s_.max_value_bytes, nullptr)) {
    if (auto p = payload_of(key, *cached)) return complete(op_id, CHORUS_OK, "", *p);
  }
  if (table_->size() == 0) return complete(op_id, CHORUS_E_NOT_FOUND, "dht: no value for the key (and no peers to ask)");
  arm_timeout(op_id, timeout_ms, "get_value");
  LookupOptions o;
  o.quorum = s_.replication;
  run_lookup(LookupKind::kGetValue, key, KadId::of_key(key), timeout_ms, o, [this, op_id, key](const LookupResult &r) {
    if (r.values.empty()) {
      if (r.timed_out) return complete(op_id, CHORUS_E_TIMEOUT, "dht: no value found before the lookup's deadline");
      return complete(op_id, CHORUS_E_NOT_FOUND, "dht: no peer holds a value for the key");
    }
    std::vector<Bytes> values;
    for (const auto &v : r.values) values.push_back(v.value);
    const Bytes &best = values[select_record(key, values)];
    auto p = payload_of(key, best);
    if (!p) return complete(op_id, CHORUS_E_INTERNAL, "dht: the selected record does not decode");
    asio::post(store_io_, [this, key, best, ttl = static_cast<int64_t>(s_.cache_ttl_ms)] {
      try {
        store_->cache_put(key, best, wall_ms(), ttl);
      } catch (const std::exception &e) {
        host_.debug(std::string("dht: cache: ") + e.what());
      }
    });
    complete(op_id, CHORUS_OK, "", *p);
  });
}

// ---- providers ----

chorus_status Node::provide(Bytes key, uint32_t timeout_ms, Done done, chorus_error *err) {
  if (key.empty() || key.size() > CHORUS_DHT_KEY_MAX)
    return fail(err, CHORUS_E_INVALID_ARG, "dht: a provider key has 1 to " + std::to_string(CHORUS_DHT_KEY_MAX) + " bytes");
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("provide", std::move(done), err,
                  [this, key = std::move(key), t](uint64_t op) mutable { do_provide(op, std::move(key), t, true); });
}

chorus_status Node::stop_providing(Bytes key) {
  if (key.empty() || key.size() > CHORUS_DHT_KEY_MAX) return CHORUS_E_INVALID_ARG;
  if (stopping_.load() || !store_) return CHORUS_E_UNAVAILABLE;
  asio::post(store_io_, [this, key = std::move(key)] {
    try {
      store_->remove_local_provide(key);
    } catch (const std::exception &e) {
      host_.warn(std::string("dht: stop_providing: ") + e.what());
    }
  });
  return CHORUS_OK;
}

void Node::do_provide(uint64_t op_id, Bytes key, uint64_t timeout_ms, bool store_locally) {
  arm_timeout(op_id, timeout_ms, "provide");
  const std::vector<Bytes> mine = own_addrs_;
  auto announce = [this, op_id, key, mine, timeout_ms] {
    if (table_->size() == 0) return complete(op_id, CHORUS_OK, "");
    run_lookup(LookupKind::kFindNode, key, KadId::of_key(key), timeout_ms, {}, [this, op_id, key, mine](const LookupResult &r) {
      std::vector<PeerId> targets = r.closest;
      if (targets.size() > s_.k) targets.resize(s_.k);
      if (targets.empty()) return complete(op_id, CHORUS_OK, "");
      auto acks = std::make_shared<size_t>(0), answered = std::make_shared<size_t>(0);
      const size_t need = std::min(s_.replication, targets.size()), total = targets.size();
      for (const PeerId &peer : targets) {
        Message req;
        req.type = MessageType::kAddProvider;
        req.key = key;
        req.provider_peers.push_back(PeerEntry{self_.bytes(), mine, ConnectionType::kConnected});
        rpc(peer, std::move(req), false, [this, op_id, acks, answered, need, total](std::optional<Message> sent, const std::string &) {
          ++*answered;
          if (sent) ++*acks;
          if (*acks == need) return complete(op_id, CHORUS_OK, "");
          if (*answered == total && *acks < need)
            complete(op_id, CHORUS_E_UNAVAILABLE, "dht: announced to only " + std::to_string(*acks) + " of " +
                                                      std::to_string(total) + " peers");
        });
      }
      asio::post(store_io_, [this, key] {
        try {
          store_->mark_provided(key, wall_ms());
        } catch (const std::exception &) {
        }
      });
    });
  };
  if (!store_locally) return announce();
  ProviderRecord self_rec;
  self_rec.key = key;
  self_rec.provider = self_.bytes();
  self_rec.addrs = mine;
  self_rec.received_ms = wall_ms();
  store_then(
      [this, key, self_rec] {
        store_->add_local_provide(key, wall_ms());
        store_->add_provider(self_rec);
      },
      [this, op_id, announce](bool ok, const std::string &why) {
        update_gauges();
        if (!ok) return complete(op_id, CHORUS_E_IO, "dht: cannot store the provide: " + why);
        announce();
      });
}

chorus_status Node::find_providers(Bytes key, size_t max, uint32_t timeout_ms, Done done, chorus_error *err) {
  if (key.empty() || key.size() > CHORUS_DHT_KEY_MAX)
    return fail(err, CHORUS_E_INVALID_ARG, "dht: a provider key has 1 to " + std::to_string(CHORUS_DHT_KEY_MAX) + " bytes");
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("find_providers", std::move(done), err,
                  [this, key = std::move(key), max, t](uint64_t op) mutable { do_find_providers(op, std::move(key), max, t); });
}

void Node::do_find_providers(uint64_t op_id, Bytes key, size_t max, uint64_t timeout_ms) {
  // Distinct providers in the order found: ours first, then the network's.
  auto found = std::make_shared<std::vector<std::pair<PeerId, std::vector<Bytes>>>>();
  auto add = [found](const PeerId &id, const std::vector<Bytes> &addrs) {
    for (auto &[p, a] : *found)
      if (p == id) {
        for (const auto &x : addrs)
          if (std::find(a.begin(), a.end(), x) == a.end()) a.push_back(x);
        return;
      }
    found->emplace_back(id, addrs);
  };
  for (const auto &p : store_->providers(key, wall_ms()))
    if (auto id = PeerId::from_bytes(p.provider, nullptr)) add(*id, p.addrs);
  auto answer = [this, op_id, found, max](bool timed_out) {
    if (found->empty()) {
      if (timed_out) return complete(op_id, CHORUS_E_TIMEOUT, "dht: no provider found before the lookup's deadline");
      return complete(op_id, CHORUS_E_NOT_FOUND, "dht: no provider for the key");
    }
    json arr = json::array();
    for (const auto &[id, addrs] : *found) {
      if (max != 0 && arr.size() >= max) break;
      std::vector<std::string> texts;
      for (const auto &a : addrs)
        if (auto t = addr_text(a); !t.empty()) texts.push_back(std::move(t));
      // The p2p host can dial them from now on.
      if (!texts.empty() && id != self_) {
        std::vector<const char *> ptrs;
        for (const auto &t : texts) ptrs.push_back(t.c_str());
        p2p_.table()->add_addrs(p2p_.self(), id.bytes().data(), id.bytes().size(), ptrs.data(), ptrs.size(),
                                s_.provider_ttl_ms, nullptr);
      }
      arr.push_back({{"peer_id", id.to_base58()}, {"addrs", texts}});
    }
    complete(op_id, CHORUS_OK, "", to_bytes(arr.dump()));
  };
  if ((max != 0 && found->size() >= max) || table_->size() == 0) return answer(false);
  arm_timeout(op_id, timeout_ms, "find_providers");
  LookupOptions o;
  o.max_providers = max;
  run_lookup(LookupKind::kGetProviders, key, KadId::of_key(key), timeout_ms, o, [add, answer](const LookupResult &r) {
    for (const auto &p : r.providers) add(p.id, p.addrs);
    answer(r.timed_out);
  });
}

// ---- peers ----

chorus_status Node::find_peer(PeerId peer, uint32_t timeout_ms, Done done, chorus_error *err) {
  if (peer.bytes().empty()) return fail(err, CHORUS_E_INVALID_ARG, "dht: the peer id is empty");
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("find_peer", std::move(done), err,
                  [this, peer = std::move(peer), t](uint64_t op) mutable { do_find_peer(op, std::move(peer), t); });
}

void Node::do_find_peer(uint64_t op_id, PeerId peer, uint64_t timeout_ms) {
  auto answer = [this, op_id, peer] {
    std::vector<std::string> texts = addr_texts(peer);
    if (peer == self_) {
      texts.clear();
      chorus_buf buf{};
      if (p2p_.table()->get_info_json(p2p_.self(), &buf, nullptr) == CHORUS_OK) {
        auto info = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
        if (buf.release != nullptr) buf.release(&buf);
        if (info.is_object() && info.contains("addrs") && info["addrs"].is_array())
          for (const auto &a : info["addrs"])
            if (a.is_string()) texts.push_back(a.get<std::string>());
      }
    }
    if (texts.empty()) return complete(op_id, CHORUS_E_NOT_FOUND, "dht: no addresses found for " + peer.to_base58());
    json j = {{"peer_id", peer.to_base58()}, {"addrs", texts}};
    complete(op_id, CHORUS_OK, "", to_bytes(j.dump()));
  };
  const bool connected = p2p_.table()->is_connected(p2p_.self(), peer.bytes().data(), peer.bytes().size()) != 0;
  if (peer == self_ || connected || addrs_.count(peer) != 0 || table_->size() == 0) return answer();
  arm_timeout(op_id, timeout_ms, "find_peer");
  const uint64_t lookup_id = last_lookup_ + 1;
  run_lookup(LookupKind::kFindNode, peer.bytes(), KadId::of_peer(peer), timeout_ms, {},
             [answer](const LookupResult &) { answer(); });
  if (auto it = lookups_.find(lookup_id); it != lookups_.end()) it->second->want = peer;
}

chorus_status Node::routing_json(std::string *out, chorus_error *err) {
  if (stopping_.load() || !thread_.joinable()) return fail(err, CHORUS_E_UNAVAILABLE, "dht: the plugin is not running");
  auto build = [this] {
    json buckets = json::array();
    for (const auto &b : table_->buckets())
      buckets.push_back({{"index", b.index}, {"peers", b.peers}});
    json peers = json::array();
    for (const auto &p : table_->peers()) peers.push_back(p.id.to_base58());
    return json{{"mode", server_.load() ? "server" : "client"},
                {"peer_id", self_text_},
                {"peers", table_->size()},
                {"peer_ids", peers},
                {"buckets", buckets}}
        .dump();
  };
  if (on_dht_thread()) {
    *out = build();
    return CHORUS_OK;
  }
  std::promise<std::string> done;
  auto result = done.get_future();
  post([&] { done.set_value(build()); });
  while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
    if (stopped_.load() && result.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      return fail(err, CHORUS_E_UNAVAILABLE, "dht: the plugin stopped");
  *out = result.get();
  return CHORUS_OK;
}

// ---- periodic tasks ----

void Node::schedule(asio::steady_timer &t, uint64_t ms, void (Node::*fn)()) {
  t.expires_after(std::chrono::milliseconds(ms));
  t.async_wait([this, fn](const boost::system::error_code &ec) {
    if (ec || stopping_.load()) return;
    (this->*fn)();
  });
}

void Node::bootstrap() {
  // A lookup for our own id fills the buckets near us and tells the closest peers about us.
  run_lookup(LookupKind::kFindNode, self_.bytes(), KadId::of_peer(self_), s_.lookup_deadline_ms, {},
             [this](const LookupResult &r) {
               host_.debug("dht: bootstrap lookup ended (" + std::string(lookup_end_name(r.end)) + "), " +
                           std::to_string(table_->size()) + " peer(s) in the routing table");
               update_gauges();
             });
}

void Node::refresh_tick() {
  const int64_t now = now_ms();
  for (int bucket : table_->buckets_to_refresh(now, static_cast<int64_t>(s_.refresh_interval_ms))) {
    // A key whose KadId falls in the bucket (requests carry keys, not KadIds): random keys until one
    // lands there; deep buckets are rarely worth the search and are skipped.
    if (bucket > 16) {
      table_->mark_refreshed(bucket, now);
      continue;
    }
    const KadId me = KadId::of_peer(self_);
    Bytes key(32);
    bool found = false;
    for (int i = 0; i < (8 << bucket) && !found; ++i) {
      for (auto &b : key) b = static_cast<uint8_t>(rng_());
      found = common_prefix_len(KadId::of_key(key), me) == bucket;
    }
    table_->mark_refreshed(bucket, now);
    if (!found) continue;
    run_lookup(LookupKind::kFindNode, key, KadId::of_key(key), s_.lookup_deadline_ms, {}, [this](const LookupResult &) {
      update_gauges();
    });
  }
  schedule(refresh_timer_, s_.refresh_interval_ms, &Node::refresh_tick);
}

void Node::republish_tick() {
  const int64_t wall = wall_ms();
  std::vector<StoredRecord> due;
  try {
    due = store_->local_records_older_than(wall - static_cast<int64_t>(s_.republish_interval_ms), 64);
  } catch (const std::exception &e) {
    host_.warn(std::string("dht: republish: ") + e.what());
  }
  for (auto &rec : due) {
    rec.received_ms = wall;
    rec.expires_ms = 0;
    store_then([this, rec] { store_->put_record(rec); }, [this, key = rec.key, value = rec.value](bool ok, const std::string &) {
      if (ok) replicate(0, key, value, s_.lookup_deadline_ms);
    });
  }
  schedule(republish_timer_, std::clamp<uint64_t>(s_.republish_interval_ms / 4, 1000, 600000), &Node::republish_tick);
}

void Node::reprovide_tick() {
  std::vector<Bytes> due;
  try {
    due = store_->local_provides_older_than(wall_ms() - static_cast<int64_t>(s_.reprovide_interval_ms));
  } catch (const std::exception &e) {
    host_.warn(std::string("dht: re-provide: ") + e.what());
  }
  for (auto &key : due) do_provide(0, std::move(key), s_.lookup_deadline_ms, false);
  schedule(reprovide_timer_, std::clamp<uint64_t>(s_.reprovide_interval_ms / 4, 1000, 600000), &Node::reprovide_tick);
}

void Node::sweep_tick() {
  store_then([this] { store_->sweep_expired(wall_ms()); }, [this](bool ok, const std::string &why) {
    if (!ok) host_.warn("dht: expiry sweep: " + why);
    update_gauges();
  });
  schedule(sweep_timer_, s_.sweep_interval_ms, &Node::sweep_tick);
}

void Node::update_gauges() {
  if (!table_ || !store_) return;
  m_.routing_peers.set(static_cast<double>(table_->size()));
  // The table grew (a peer came back or a new one arrived): puts that reached too few peers go out
  // again shortly (a second, so the peers coming back together are all in the table).
  const size_t size = table_->size();
  if (size > last_table_size_ && !short_puts_.empty() && !catchup_armed_ && !stopping_.load()) {
    catchup_armed_ = true;
    schedule(catchup_timer_, 1000, &Node::catchup_tick);
  }
  last_table_size_ = size;
  try {
    const StoreStats st = store_->stats();
    m_.records.set(static_cast<double>(st.records));
    m_.providers.set(static_cast<double>(st.providers));
  } catch (const std::exception &) {
  }
}

// ---- health probe: put then get a temporary /chorus/ key ----

void Node::probe_tick() {
  if (!probe_running_) {
    probe_running_ = true;
    const auto started = std::chrono::steady_clock::now();
    const std::string key_text = "/chorus/_probe/" + self_text_;
    const Bytes key = to_bytes(key_text);
    const Bytes value = to_bytes("probe " + std::to_string(wall_ms()));
    auto finish = [this, started](bool ok, const std::string &note) {
      probe_running_ = false;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      probe_ok_ = ok;
      if (ok) {
        m_.probe_seconds.observe(s);
        probe_last_success_ms_ = wall_ms();
        probe_note_ = "put/get probe ok in " + std::to_string(static_cast<int>(s * 1000)) + " ms";
      } else {
        m_.probe_failures.inc();
        probe_note_ = "put/get probe failed: " + note;
      }
      report_health();
    };
    // The probe is local-first: it checks the store and the signing path, and reaches the closest
    // peers when there are any (a failed replication is reported, not hidden).
    const uint64_t put_id = ++last_pending_;
    pending_.emplace(put_id, [this, key, value, finish](chorus_status st, const std::string &msg, const Bytes &) {
      if (st != CHORUS_OK && st != CHORUS_E_UNAVAILABLE) return finish(false, "put: " + msg);
      const uint64_t get_id = ++last_pending_;
      pending_.emplace(get_id, [value, finish](chorus_status st, const std::string &msg, const Bytes &data) {
        if (st != CHORUS_OK) return finish(false, "get: " + msg);
        if (data != value) return finish(false, "get returned another value");
        finish(true, "");
      });
      do_get(get_id, key, s_.probe.timeout_ms);
    });
    do_put(put_id, key, value, s_.probe.timeout_ms);
  }
  schedule(probe_timer_, s_.probe.interval_ms, &Node::probe_tick);
}

void Node::report_health() {
  const std::string summary = std::to_string(table_->size()) + " peer(s) in the routing table, " +
                              (server_.load() ? "server" : "client") + " mode";
  if (!s_.probe.enabled) return host_.report_health(chorus::Health::ok, summary + " (probe off)");
  std::string last = probe_last_success_ms_ == 0 ? "never" : std::to_string(probe_last_success_ms_);
  const std::string msg = probe_note_ + "; last success (unix ms): " + last + "; " + summary;
  host_.report_health(probe_ok_ ? chorus::Health::ok : chorus::Health::degraded, msg);
}

}  // namespace chorus::dht
