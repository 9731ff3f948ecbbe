// How the node recovers after a partition heals (README.md, Peers and Rechecks; docs/protocols.md,
// DHT): peers that left the routing table after failed requests are asked again on a backoff
// (kad/recheck.hpp), a short table looks for the connected kad peers it lacks, and puts that reached
// too few peers go out again once the table grows.
#include <algorithm>

#include <boost/asio/steady_timer.hpp>

#include "node.hpp"
#include "node_internal.hpp"

namespace chorus::dht {

// ---- rechecks ----

void Node::check_server(const PeerId &id) {
  Message req;
  req.type = MessageType::kFindNode;
  req.key = self_.bytes();
  rpc(id, std::move(req), true, [this, id](std::optional<Message> reply, const std::string &why) {
    if (stopping_.load()) return;
    if (!reply) {
      const bool again = recheck_->failed(id, now_ms());
      m_.rechecks.inc(again ? "no_answer" : "gave_up");
      if (!again) host_.debug("dht: " + id.to_base58() + " did not answer its rechecks (" + why + "); given up until it identifies again or the table runs short");
      return arm_recheck();
    }
    recheck_->answered(id);
    peers_of(reply->closer_peers);  // remembers their addresses
    const auto r = table_->add(id, now_ms());
    m_.rechecks.inc(r == RoutingTable::AddResult::kBucketFull ? "bucket_full" : "readded");
    update_gauges();
    if (r == RoutingTable::AddResult::kAdded && !bootstrapped_) {
      bootstrapped_ = true;
      bootstrap();
    }
  });
}

void Node::peer_lost(const PeerId &id, const char *reason) {
  if (!table_->remove(id)) return;
  m_.evictions.inc(reason);
  update_gauges();
  recheck_->lost(id, now_ms());
  arm_recheck();
}

void Node::arm_recheck() {
  if (stopping_.load()) return;
  std::optional<int64_t> at = recheck_->next_due_ms();
  // While the table is short of the connected kad peers, look for them again after the longest wait
  // at the latest (recheck_tick schedules those recheck_ dropped).
  if (table_->size() < kad_peers_.size()) {
    const int64_t sweep = now_ms() + static_cast<int64_t>(s_.recheck_max_interval_ms);
    at = at ? std::min(*at, sweep) : sweep;
  }
  if (!at) return;
  if (recheck_at_ >= 0 && recheck_at_ <= *at) return;  // armed early enough
  recheck_at_ = *at;
  recheck_timer_.expires_after(std::chrono::milliseconds(std::max<int64_t>(0, *at - now_ms())));
  recheck_timer_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || stopping_.load()) return;
    recheck_at_ = -1;
    recheck_tick();
  });
}

void Node::recheck_tick() {
  const int64_t now = now_ms();
  // A connected kad peer missing from the table (dropped after its rechecks, or never answered one)
  // is scheduled again: the table should hold every server we are connected to.
  if (table_->size() < kad_peers_.size())
    for (const PeerId &p : kad_peers_)
      if (!table_->contains(p) && !recheck_->contains(p) &&
          p2p_.table()->is_connected(p2p_.self(), p.bytes().data(), p.bytes().size()) != 0)
        recheck_->lost(p, now);
  // Bounded work per tick: the rest stay due and the timer fires again at once.
  for (const PeerId &p : recheck_->take_due(now, 16)) {
    if (table_->contains(p)) {
      recheck_->answered(p);
      continue;
    }
    check_server(p);
  }
  arm_recheck();
}

// ---- catch-up puts ----

void Node::note_replicas(const Bytes &key, size_t acks, size_t need) {
  if (acks >= need) {
    short_puts_.erase(key);
    return;
  }
  // Bounded: beyond 1024 keys the republish interval catches them up.
  if (short_puts_.count(key) == 0 && short_puts_.size() < 1024) {
    short_puts_.emplace(key, 0);
    m_.catchup.inc("queued");
  }
}

void Node::catchup_tick() {
  catchup_armed_ = false;
  if (table_->size() == 0) return;  // the next growth arms it again
  // At most 32 keys per tick, each at most 5 times (then the republish interval takes over).
  std::vector<Bytes> keys;
  auto it = short_puts_.upper_bound(catchup_cursor_);  // keys are never empty: "" is before them all
  for (; it != short_puts_.end() && keys.size() < 32;) {
    if (++it->second > 5) {
      m_.catchup.inc("dropped");
      it = short_puts_.erase(it);
      continue;
    }
    keys.push_back(it->first);
    ++it;
  }
  for (const Bytes &key : keys) {
    std::optional<StoredRecord> rec;
    try {
      rec = store_->get_record(key, wall_ms());
    } catch (const std::exception &e) {
      host_.debug(std::string("dht: catch-up: ") + e.what());
    }
    if (!rec) {  // expired or replaced by a record that is not ours
      short_puts_.erase(key);
      continue;
    }
    const uint64_t op = internal_op([this, key](chorus_status st, const std::string &, const Bytes &) {
      m_.catchup.inc(st == CHORUS_OK ? "replicated" : "short");
    });
    arm_timeout(op, s_.lookup_deadline_ms, "catch-up put");
    replicate(op, key, rec->value, s_.lookup_deadline_ms);
  }
  // More than one tick's worth: the rest next second.
  if (it != short_puts_.end() && !keys.empty()) {
    catchup_cursor_ = keys.back();
    if (!catchup_armed_) {
      catchup_armed_ = true;
      schedule(catchup_timer_, 1000, &Node::catchup_tick);
    }
  } else {
    catchup_cursor_.clear();
  }
}

}  // namespace chorus::dht
