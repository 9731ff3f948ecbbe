// The heartbeat and gauges, the loopback probe and health (node_internal.hpp lists the parts of
// the node).
#include "node_internal.hpp"

namespace chorus::gossip {

// ---- timers ----

void Node::schedule_heartbeat(uint64_t ms) {
  heartbeat_timer_.expires_after(std::chrono::milliseconds(ms));
  heartbeat_timer_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || stopping_.load()) return;
    router_->heartbeat();
    update_gauges();
    // A peer whose stream from us closed while it stays connected (it reset the stream, say) gets a
    // new one, at most once a heartbeat.
    for (const auto &[id, p] : peers_)
      if (p->connected && p->out_stream == 0 && !p->opening && !p->open_failed) maybe_open(id);
    schedule_drain();
    schedule_heartbeat(s_.router.heartbeat_ms);
  });
}

void Node::update_gauges() {
  std::map<std::string, std::pair<size_t, size_t>> now;
  for (const auto &t : router_->topics()) {
    auto &v = now[label(t.topic)];
    v.first += t.mesh_peers;
    v.second += t.peers;
  }
  for (const auto &[l, v] : last_gauges_)
    if (now.count(l) == 0) now[l] = {0, 0};
  for (const auto &[l, v] : now) {
    m_.mesh_peers.set(l, static_cast<double>(v.first));
    m_.topic_peers.set(l, static_cast<double>(v.second));
  }
  last_gauges_ = std::move(now);
  const auto peers = router_->peers();
  m_.peers.set(static_cast<double>(peers.size()));
  for (const auto &p : peers) m_.peer_score.observe(p.score);
}

void Node::schedule_probe(uint64_t ms) {
  probe_timer_.expires_after(std::chrono::milliseconds(ms));
  probe_timer_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || stopping_.load()) return;
    send_probe();
    schedule_probe(s_.probe.interval_ms);
  });
}

void Node::send_probe() {
  if (probe_outstanding_) return;  // its timeout is still running
  ++probe_nonce_;
  const std::string payload = "probe " + std::to_string(probe_nonce_);
  probe_outstanding_ = true;
  probe_sent_ = std::chrono::steady_clock::now();
  chorus::ErrorBuffer err;
  if (do_publish(probe_topic_, Bytes(payload.begin(), payload.end()), nullptr, err.get()) != CHORUS_OK) {
    probe_outstanding_ = false;
    probe_ok_ = false;
    probe_note_ = "loopback probe could not publish: " + std::string(err.text());
    m_.probe_failures.inc();
    report_health();
    return;
  }
  probe_timeout_.expires_after(std::chrono::milliseconds(s_.probe.timeout_ms));
  probe_timeout_.async_wait([this](const boost::system::error_code &ec) {
    if (ec || !probe_outstanding_) return;
    probe_outstanding_ = false;
    probe_ok_ = false;
    probe_note_ = "loopback probe not delivered within " + std::to_string(s_.probe.timeout_ms) + " ms";
    m_.probe_failures.inc();
    report_health();
  });
}

void Node::report_health() {
  size_t mesh = 0, joined = 0;
  for (const auto &t : router_->topics()) {
    if (t.topic == probe_topic_ || !t.subscribed) continue;
    ++joined;
    mesh += t.mesh_peers;
  }
  size_t streams = 0;
  for (const auto &[id, p] : peers_)
    if (p->in_router) ++streams;
  const std::string summary = std::to_string(streams) + " gossip peer(s), " + std::to_string(mesh) +
                              " mesh link(s) over " + std::to_string(joined) + " topic(s)";
  if (!s_.probe.enabled) {
    host_.report_health(chorus::Health::ok, summary + " (loopback probe off)");
  } else if (probe_ok_) {
    host_.report_health(chorus::Health::ok, probe_note_ + "; " + summary);
  } else {
    host_.report_health(chorus::Health::degraded, probe_note_ + "; " + summary);
  }
}

}  // namespace chorus::gossip
