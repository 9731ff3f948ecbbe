// One connection: the upgrade (upgrader.cpp) and then the yamux session with its streams. Runs
// entirely on the network thread.
#include "connection.hpp"

#include <cstring>
#include <limits>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "clock.hpp"
#include "node_impl.hpp"

namespace chorus::p2p {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Reads start small (an idle connection costs little) and double up to kReadChunk while the
// peer keeps filling them.
constexpr size_t kFirstRead = 8 * 1024;
constexpr size_t kReadChunk = 256 * 1024;
// Stop pulling stream bytes into the session while this much ciphertext waits for the socket:
// the TCP connection is the bottleneck then, and queueing more only costs memory.
constexpr size_t kSocketBudget = 1024 * 1024;
// Stop reading from a peer while this much output waits for its socket (answers to its pings,
// window updates, resets...): a peer that sends but never reads must not grow our memory.
constexpr size_t kReadPauseBacklog = 4 * 1024 * 1024;
// A buffer keeps its capacity once drained. After a burst (a bulk transfer, the backlog a healed
// partition lets through) every connection kept the largest one it ever saw: about 8 MiB per agent
// in the cluster soak (docs/benchmarks.md, per-agent footprint). The sweep gives back what a drained
// buffer holds above this, and the read size shrinks again once reads stop filling it.
constexpr size_t kKeptCapacity = 64 * 1024;

template <class Buffer>
void release_if_drained(Buffer &b) {
  if (b.empty() && b.capacity() > kKeptCapacity) Buffer().swap(b);
}

// asio::async_write's default completion condition (transfer_all) hands the socket at most 64 KiB
// per send(), and runs the scheduler between chunks: on a fast link that is a syscall, a TCP
// transmit and an epoll round per 64 KiB, which cost more than the encryption. Offering the whole
// buffer lets the kernel take as much as the socket's send buffer holds in one call.
size_t whole_buffer(const boost::system::error_code &ec, size_t /*transferred*/) {
  return ec ? 0 : std::numeric_limits<size_t>::max();
}

}  // namespace

Connection::Connection(NodeImpl &node, tcp::socket socket, uint32_t direction, uint64_t id,
                       std::optional<PeerId> expected, Multiaddr remote, uint64_t dial_id)
    : node_(node),
      socket_(std::move(socket)),
      direction_(direction),
      id_(id),
      dial_id_(dial_id),
      remote_(std::move(remote)),
      upgrader_(std::make_unique<Upgrader>(direction == CHORUS_P2P_DIR_OUTBOUND, node.identity(), std::move(expected))) {
  boost::system::error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  if (!ec) {
    remote_ip_ = ep.address().to_string(ec);
    remote_loopback_ = ep.address().is_loopback();
  }
  socket_.set_option(tcp::no_delay(true), ec);
  opened_ms_ = monotonic_ms();
  handshake_deadline_ms_ = opened_ms_ + (direction_ == CHORUS_P2P_DIR_OUTBOUND ? node_.settings().limits.dial_timeout_ms
                                                                              : node_.settings().limits.handshake_timeout_ms);
}

Connection::~Connection() = default;

void Connection::start() {
  Bytes out;
  upgrader_->start(out);
  append(wbuf_, out);
  start_write();
  read_more();
}

size_t Connection::backlog() const { return wbuf_.size() + wbuf_inflight_.size() + mux_out_.size(); }

void Connection::read_more() {
  if (reading_ || phase_ == Phase::closed) return;
  if (backlog() > kReadPauseBacklog) {
    read_blocked_ = true;  // resumed by the write completion once the peer has read enough
    return;
  }
  read_blocked_ = false;
  if (read_space_ == 0) read_space_ = kFirstRead;
  if (rlen_ == 0 && rbuf_.size() > std::max(kKeptCapacity, 2 * read_space_)) Bytes().swap(rbuf_);
  if (rbuf_.size() - rlen_ < read_space_) rbuf_.resize(rlen_ + read_space_);
  reading_ = true;
  last_read_request_ = rbuf_.size() - rlen_;
  socket_.async_read_some(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                          [self = shared_from_this()](const boost::system::error_code &ec, size_t n) {
                            self->reading_ = false;
                            if (self->phase_ == Phase::closed) return;
                            if (ec) {
                              if (self->phase_ != Phase::open)
                                self->fail_upgrade(UpgradeError::io,
                                                   "connection lost during the handshake: " + ec.message());
                              else
                                self->abort(CHORUS_E_IO, ec == asio::error::eof ? "connection closed by the peer"
                                                                                : "connection lost: " + ec.message());
                              return;
                            }
                            self->on_read(n);
                          });
}

void Connection::on_read(size_t n) {
  auto self = shared_from_this();  // streams' callbacks may drop the node's reference
  graveyard_.clear();
  last_rx_ms_ = monotonic_ms();
  keepalive_sent_ = false;
  if (n == last_read_request_) {
    full_read_since_sweep_ = true;
    if (read_space_ < kReadChunk) read_space_ *= 2;
  }
  node_.stats().bytes_in += n;
  rlen_ += n;
  if (!process_input()) return;
  retry_pending_opens();
  pump();
  flush();
  read_more();
}

bool Connection::process_input() {
  size_t pos = 0;
  auto remaining = [&] { return BytesView(rbuf_.data() + pos, rlen_ - pos); };
  while (phase_ != Phase::closed) {
    if (!cipher_) {
      size_t used = 0;
      Bytes out;
      const auto st = upgrader_->feed_insecure(remaining(), used, out);
      pos += used;
      append(wbuf_, out);
      if (st == Upgrader::Status::failed) {
        fail_upgrade(upgrader_->error(), upgrader_->error_text());
        return false;
      }
      if (st == Upgrader::Status::running) break;
      secured();
      if (phase_ == Phase::closed) return false;
    } else {
      // Everything after the handshake is Noise transport frames.
      size_t used = 0;
      const auto st = cipher_->decrypt(remaining(), used, plain_);
      pos += used;
      if (st == NoiseTransport::Status::failed) {
        if (phase_ == Phase::open)
          abort(CHORUS_E_PROTOCOL, "bad Noise frame: " + cipher_->error());
        else
          fail_upgrade(UpgradeError::noise, "bad Noise frame: " + cipher_->error());
        return false;
      }
      if (phase_ == Phase::upgrading && !plain_.empty()) {
        size_t u = 0;
        Bytes out;
        const auto ms = upgrader_->feed_muxer(BytesView(plain_), u, out);
        if (!out.empty()) cipher_->encrypt(out, wbuf_);
        plain_.erase(plain_.begin(), plain_.begin() + static_cast<ptrdiff_t>(u));
        if (ms == Upgrader::Status::failed) {
          fail_upgrade(upgrader_->error(), upgrader_->error_text());
          return false;
        }
        if (ms == Upgrader::Status::muxed) muxed();
        if (phase_ == Phase::closed) return false;
      }
      if (phase_ == Phase::open && !plain_.empty()) {
        Bytes chunk;
        chunk.swap(plain_);  // stream callbacks may run arbitrary code; keep our buffer stable
        const auto ys = mux_->feed(chunk);
        chunk.clear();
        if (plain_.empty()) plain_.swap(chunk);  // reuse the capacity
        if (phase_ == Phase::closed) return false;
        if (ys == yamux::Session::Status::failed) {
          node_.stats().protocol_errors++;
          mux_->take_output(mux_out_);
          flush();
          abort(CHORUS_E_PROTOCOL, "yamux protocol error: " + mux_->error());
          return false;
        }
      }
      break;
    }
  }
  if (phase_ == Phase::closed) return false;
  if (pos > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
    rlen_ -= pos;
  }
  if (rlen_ > 4 * kReadChunk) {  // a peer that sends much more than one frame without completing it
    abort(CHORUS_E_PROTOCOL, "peer sent more than 1 MiB of unframed data");
    return false;
  }
  return true;
}

void Connection::fail_upgrade(UpgradeError error, const std::string &why) {
  auto &s = node_.stats();
  switch (error) {
    case UpgradeError::timeout:
      s.hs_fail_timeout++;
      break;
    case UpgradeError::noise:
      s.hs_fail_noise++;
      break;
    case UpgradeError::security_negotiation:
    case UpgradeError::muxer_negotiation:
      s.hs_fail_multistream++;
      break;
    case UpgradeError::peer_id_mismatch:
      s.hs_fail_peer_id++;
      break;
    case UpgradeError::io:
      s.hs_fail_io++;
      break;
  }
  abort(upgrade_error_status(error), why);
}

void Connection::secured() {
  peer_ = upgrader_->remote_peer();
  cipher_.emplace(upgrader_->take_transport());
  bool allowed = true;
  std::string why;
  node_.connection_secured(*this, allowed, why);
  if (!allowed) {
    abort(CHORUS_E_BUSY, why);
    return;
  }
  Bytes out;
  upgrader_->start_muxer(out);
  cipher_->encrypt(out, wbuf_);
}

void Connection::muxed() {
  upgrader_.reset();
  yamux::Config cfg;
  cfg.client = direction_ == CHORUS_P2P_DIR_OUTBOUND;
  cfg.max_inbound_streams = node_.settings().limits.max_streams_per_connection;
  // Room above the user limit for the node's own streams (identify).
  cfg.max_outbound_streams = node_.settings().limits.max_streams_per_connection + 16;
  mux_ = std::make_unique<yamux::Session>(cfg, *this);
  phase_ = Phase::open;
  node_.connection_open(*this);
}

void Connection::abort(chorus_status status, const std::string &reason) {
  if (phase_ == Phase::closed) return;
  auto self = shared_from_this();
  phase_ = Phase::closed;
  // End the streams first so their owners hear about it before the peer-level event.
  std::vector<uint32_t> ids;
  ids.reserve(streams_.size());
  for (auto &[yid, s] : streams_) ids.push_back(yid);
  for (uint32_t yid : ids) {
    auto it = streams_.find(yid);
    if (it != streams_.end()) end_stream(*it->second, status, reason);
  }
  while (!pending_opens_.empty()) {
    PendingOpen p = std::move(pending_opens_.front());
    pending_opens_.pop_front();
    p.request.done(status == CHORUS_OK ? CHORUS_E_IO : status, nullptr, reason);
  }
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  node_.logf(CHORUS_LOG_DEBUG,
             "connection " + std::to_string(id_) + " (" + remote_.to_string() + ") closed: " + reason);
  node_.connection_closed(*this, reason);
}

void Connection::release_drained_buffers() {
  if (!full_read_since_sweep_ && read_space_ > kFirstRead) read_space_ = std::max(kFirstRead, read_space_ / 2);
  full_read_since_sweep_ = false;
  release_if_drained(plain_);
  release_if_drained(mux_out_);
  release_if_drained(wbuf_);
  if (!writing_) release_if_drained(wbuf_inflight_);  // else the socket is writing from it
  for (auto &[yid, st] : streams_) {
    if (st->sendq_off != st->sendq.size()) continue;  // still sending: keep its queue
    st->sendq.clear();
    st->sendq_off = 0;
    release_if_drained(st->sendq);
  }
}

void Connection::sweep(uint64_t now) {
  if (phase_ == Phase::closed) return;
  release_drained_buffers();
  if (phase_ != Phase::open) {
    if (now >= handshake_deadline_ms_) fail_upgrade(UpgradeError::timeout, "handshake timed out (slow or silent peer)");
    return;
  }
  retry_pending_opens();
  // Keepalive: a peer silent for 30 s gets a yamux ping; silent for 60 s, it is gone.
  if (last_rx_ms_ == 0) last_rx_ms_ = now;
  if (now - last_rx_ms_ >= 60000) {
    abort(CHORUS_E_IO, "peer unresponsive for 60 s (no answer to keepalive pings)");
    return;
  }
  if (now - last_rx_ms_ >= 30000 && !keepalive_sent_) {
    keepalive_sent_ = true;
    mux_->ping(static_cast<uint32_t>(now));
    schedule_flush();
  }
  std::vector<uint32_t> late;
  for (auto &[yid, s] : streams_)
    if (s->negotiation && s->negotiation_deadline_ms != 0 && now >= s->negotiation_deadline_ms) late.push_back(yid);
  for (uint32_t yid : late) {
    auto it = streams_.find(yid);
    if (it == streams_.end()) continue;
    mux_->reset(yid);
    end_stream(*it->second, CHORUS_E_TIMEOUT, "protocol negotiation timed out");
  }
  if (!late.empty()) flush();
}

// ---- streams ---------------------------------------------------------------------------------

Stream *Connection::new_stream(uint32_t yid, uint32_t direction, bool internal) {
  auto s = std::make_unique<Stream>();
  s->id = node_.next_stream_id();
  s->yid = yid;
  s->conn = this;
  s->direction = direction;
  s->negotiation_deadline_ms = monotonic_ms() + node_.settings().limits.negotiation_timeout_ms;
  Stream *raw = s.get();
  if (direction == CHORUS_P2P_DIR_OUTBOUND && !internal) ++outbound_streams_;
  raw->internal = internal;
  streams_.emplace(yid, std::move(s));
  node_.register_stream(*raw);
  return raw;
}

bool Connection::open_stream(const std::vector<std::string> &protocols, OpenRequest &request, uint32_t timeout_ms,
                             std::string &why, Stream **opened, bool internal) {
  if (opened != nullptr) *opened = nullptr;
  if (phase_ != Phase::open) {
    why = "connection is not open";
    return false;
  }
  if (mux_->remote_going_away()) {
    why = "the peer is going away (yamux GoAway)";
    return false;
  }
  const uint32_t limit = node_.settings().limits.max_streams_per_connection;
  if (!internal && outbound_streams_ + pending_opens_.size() >= limit) {
    why = "stream limit reached on this connection (max_streams_per_connection " + std::to_string(limit) + ")";
    return false;
  }
  const uint32_t yid = pending_opens_.empty() ? mux_->open_stream() : 0;
  if (yid == 0) {
    // Below the stream limit, so the peer has not acknowledged enough earlier opens yet.
    const uint32_t wait = timeout_ms != 0 ? timeout_ms : node_.settings().limits.negotiation_timeout_ms;
    pending_opens_.push_back(PendingOpen{protocols, std::move(request), timeout_ms, monotonic_ms() + wait, internal});
    return true;
  }
  Stream *s = new_stream(yid, CHORUS_P2P_DIR_OUTBOUND, internal);
  if (timeout_ms != 0) s->negotiation_deadline_ms = monotonic_ms() + timeout_ms;
  s->open.emplace(std::move(request));
  start_negotiation(*s, Multistream::initiator(protocols));
  if (opened != nullptr) *opened = s;
  return true;
}

// Our multistream header (and, outbound, the first proposal) go out at once, without waiting for
// the yamux ACK (js ACKs lazily).
void Connection::start_negotiation(Stream &s, Multistream negotiation) {
  s.negotiation = std::make_unique<Multistream>(std::move(negotiation));
  Bytes out;
  s.negotiation->take_output(out);
  s.sendq.insert(s.sendq.end(), out.begin(), out.end());
  s.uncounted += out.size();
  mark_ready(s);
  schedule_flush();
}

void Connection::retry_pending_opens() {
  while (!pending_opens_.empty() && phase_ == Phase::open) {
    const uint32_t yid = mux_->open_stream();
    if (yid == 0) break;
    PendingOpen p = std::move(pending_opens_.front());
    pending_opens_.pop_front();
    Stream *s = new_stream(yid, CHORUS_P2P_DIR_OUTBOUND, p.internal);
    s->negotiation_deadline_ms = p.deadline_ms;
    s->open.emplace(std::move(p.request));
    start_negotiation(*s, Multistream::initiator(p.protocols));
  }
  const uint64_t now = monotonic_ms();
  for (auto it = pending_opens_.begin(); it != pending_opens_.end();) {
    if (it->deadline_ms > now) {
      ++it;
      continue;
    }
    PendingOpen p = std::move(*it);
    it = pending_opens_.erase(it);
    p.request.done(CHORUS_E_TIMEOUT, nullptr, "the peer did not acknowledge earlier streams in time");
    it = pending_opens_.begin();  // done() may have queued or failed others
  }
}

void Connection::on_stream_opened(uint32_t yid) {
  if (phase_ == Phase::closed) return;  // aborted during this feed
  Stream *s = new_stream(yid, CHORUS_P2P_DIR_INBOUND);
  start_negotiation(*s, Multistream::responder(node_.supported_protocols()));
}

void Connection::on_data(uint32_t yid, BytesView data) {
  if (phase_ == Phase::closed) return;  // aborted during this feed
  auto it = streams_.find(yid);
  if (it == streams_.end()) {
    mux_->consume(yid, data.size());
    return;
  }
  Stream &s = *it->second;
  if (s.negotiation) {
    negotiate(s, data);
    return;
  }
  deliver(s, data);
}

void Connection::negotiate(Stream &s, BytesView data) {
  size_t used = 0;
  const auto st = s.negotiation->feed(data, used);
  mux_->consume(s.yid, used);
  Bytes out;
  s.negotiation->take_output(out);
  if (!out.empty()) {
    s.sendq.insert(s.sendq.end(), out.begin(), out.end());
    s.uncounted += out.size();
    mark_ready(s);
    schedule_flush();
  }
  if (st == Multistream::State::failed) {
    const std::string why = s.negotiation->error();
    mux_->consume(s.yid, data.size() - used);
    mux_->reset(s.yid);
    end_stream(s, CHORUS_E_PROTOCOL, "protocol negotiation failed: " + why);
    return;
  }
  if (st == Multistream::State::done) negotiated(s, data.subspan(used));
}

void Connection::negotiated(Stream &s, BytesView rest) {
  s.protocol = s.negotiation->protocol();
  s.negotiation.reset();
  s.negotiation_deadline_ms = 0;
  if (s.direction == CHORUS_P2P_DIR_OUTBOUND) {
    OpenRequest req = std::move(*s.open);
    s.open.reset();
    s.sink = std::move(req.sink);
    node_.stats().streams_opened_total++;
    req.done(CHORUS_OK, &s, {});
  } else {
    std::string why;
    s.sink = node_.accept_stream(s, why);
    if (s.sink && s.ended) {  // the accept function reset the stream it was accepting
      s.sink->closed(s, CHORUS_E_CANCELLED, "reset by the local side");
      mux_->consume(s.yid, rest.size());
      return;
    }
    if (!s.sink) {
      mux_->consume(s.yid, rest.size());
      mux_->reset(s.yid);
      end_stream(s, CHORUS_E_CANCELLED, why);
      return;
    }
    node_.stats().streams_opened_total++;
  }
  if (s.ended) {  // closed from inside the open callback
    mux_->consume(s.yid, rest.size());
    return;
  }
  if (!rest.empty()) deliver(s, rest);
}

void Connection::deliver(Stream &s, BytesView data) {
  if (s.ended || !s.sink) {
    mux_->consume(s.yid, data.size());
    return;
  }
  if (s.paused) {
    s.held.insert(s.held.end(), data.begin(), data.end());
    return;  // consumed (window reopened) when delivered
  }
  const uint32_t yid = s.yid;
  s.sink->data(s, data);
  // The sink may have reset the stream (freeing it) or closed the connection.
  if (phase_ == Phase::closed) return;
  mux_->consume(yid, data.size());
}

void Connection::on_remote_fin(uint32_t yid) {
  if (phase_ == Phase::closed) return;  // aborted during this feed
  auto it = streams_.find(yid);
  if (it == streams_.end()) return;
  Stream &s = *it->second;
  s.remote_fin = true;
  if (s.negotiation) {
    mux_->reset(yid);
    end_stream(s, CHORUS_E_PROTOCOL, "the peer closed the stream during protocol negotiation");
    return;
  }
  if (s.paused && !s.held.empty()) {
    s.eof_pending = true;
    return;
  }
  if (s.sink) s.sink->eof(s);
}

void Connection::on_stream_reset(uint32_t yid) {
  if (phase_ == Phase::closed) return;  // aborted during this feed
  auto it = streams_.find(yid);
  if (it == streams_.end()) return;
  if (it->second->open) {
    end_stream(*it->second, CHORUS_E_PROTOCOL, "the peer refused the stream (reset)");
    return;
  }
  end_stream(*it->second, CHORUS_E_IO, "stream reset by the peer");
}

void Connection::on_stream_closed(uint32_t yid) {
  if (phase_ == Phase::closed) return;  // aborted during this feed
  auto it = streams_.find(yid);
  if (it == streams_.end()) return;
  Stream &s = *it->second;
  if (s.paused && (!s.held.empty() || s.eof_pending)) {
    // Both sides are done, but the handler has not read everything yet: keep the stream until it
    // resumes and has seen the bytes and the EOF.
    s.close_pending = true;
    return;
  }
  end_stream(s, CHORUS_OK, "closed");
}

void Connection::on_writable(uint32_t yid) {
  if (phase_ == Phase::closed) return;  // aborted during this feed
  auto it = streams_.find(yid);
  if (it != streams_.end()) mark_ready(*it->second);
  schedule_flush();
}

void Connection::on_go_away(uint32_t code) {
  node_.logf(CHORUS_LOG_DEBUG, "connection " + std::to_string(id_) + ": peer sent GoAway (code " +
                                   std::to_string(code) + ")");
}

void Connection::end_stream(Stream &s, chorus_status status, const std::string &reason) {
  if (s.ended) return;
  s.ended = true;
  s.gate->alive = false;
  node_.unregister_stream(s);
  auto node_it = streams_.find(s.yid);
  std::unique_ptr<Stream> owned;
  if (node_it != streams_.end()) {
    owned = std::move(node_it->second);
    streams_.erase(node_it);
    if (s.direction == CHORUS_P2P_DIR_OUTBOUND && !s.internal) --outbound_streams_;
  }
  if (s.open) {
    OpenRequest req = std::move(*s.open);
    s.open.reset();
    req.done(status == CHORUS_OK ? CHORUS_E_IO : status, nullptr, reason);
  } else if (s.sink) {
    s.sink->closed(s, status, reason);
  }
  if (owned) graveyard_.push_back(std::move(owned));
}

void Connection::stream_write(Stream &s, BytesView data) {
  if (s.ended || s.fin_requested) return;
  if (s.sendq_off > 0 && s.sendq_off == s.sendq.size()) {
    s.sendq.clear();
    s.sendq_off = 0;
  }
  s.sendq.insert(s.sendq.end(), data.begin(), data.end());
  mark_ready(s);
  schedule_flush();
}

void Connection::stream_close_write(Stream &s) {
  if (s.ended || s.fin_requested) return;
  s.fin_requested = true;
  mark_ready(s);
  schedule_flush();
}

void Connection::stream_reset(Stream &s, chorus_status status, const std::string &reason) {
  if (s.ended) return;
  if (mux_) mux_->reset(s.yid);
  end_stream(s, status, reason);
  schedule_flush();
}

void Connection::stream_set_paused(Stream &s, bool paused) {
  if (s.ended || s.paused == paused) return;
  s.paused = paused;
  if (paused) return;
  // Deliver what arrived meanwhile, in bounded pieces so a re-pause takes effect.
  while (!s.paused && !s.ended && !s.held.empty()) {
    Bytes chunk;
    chunk.swap(s.held);
    const uint32_t yid = s.yid;
    if (s.sink) s.sink->data(s, chunk);
    if (phase_ == Phase::closed) return;
    mux_->consume(yid, chunk.size());
    if (streams_.find(yid) == streams_.end()) return;
  }
  if (!s.ended && !s.paused && s.eof_pending) {
    s.eof_pending = false;
    if (s.sink) s.sink->eof(s);
  }
  if (!s.ended && !s.paused && s.close_pending) end_stream(s, CHORUS_OK, "closed");
  schedule_flush();
}

void Connection::mark_ready(Stream &s) {
  if (s.in_ready) return;
  s.in_ready = true;
  ready_.push_back(s.yid);
}

void Connection::pump() {
  if (phase_ != Phase::open) return;
  const size_t hwm = node_.settings().limits.stream_send_buffer;
  size_t rounds = ready_.size();
  // Stream bytes handed to the session count against the socket budget at once (they sit in the
  // session's output until take_output), so one wide window cannot queue megabytes.
  size_t used = wbuf_.size() + mux_out_.size();
  while (rounds-- > 0 && !ready_.empty() && used < kSocketBudget) {
    const uint32_t yid = ready_.front();
    ready_.pop_front();
    auto it = streams_.find(yid);
    if (it == streams_.end()) continue;
    Stream &s = *it->second;
    s.in_ready = false;
    const size_t pending = s.sendq.size() - s.sendq_off;
    if (pending > 0) {
      const size_t chunk = std::min(pending, kSocketBudget - used);
      const size_t n = mux_->write(yid, BytesView(s.sendq.data() + s.sendq_off, chunk));
      used += n + yamux::kHeaderSize * (n / (64 * 1024) + 1);
      s.sendq_off += n;
      // Negotiation bytes were never counted into the gate; only what write() queued was.
      const size_t negotiation_part = std::min(s.uncounted, n);
      s.uncounted -= negotiation_part;
      s.gate->queued -= n - negotiation_part;
      if (s.sendq_off == s.sendq.size()) {
        s.sendq.clear();
        s.sendq_off = 0;
      } else if (s.sendq_off > 64 * 1024 && s.sendq_off * 2 > s.sendq.size()) {  // amortised O(1) per byte
        s.sendq.erase(s.sendq.begin(), s.sendq.begin() + static_cast<ptrdiff_t>(s.sendq_off));
        s.sendq_off = 0;
      }
      if (n < pending) {
        // Window exhausted: yamux calls on_writable when the peer grants more. If the window is
        // still open, the socket budget is what stopped us: come back after the next write.
        if (mux_->send_window(yid) > 0) {
          mark_ready(s);
        } else if (n == chunk) {
          // The budget and the window ran out together: yamux took all we offered, so it does not
          // know we want more. Offer one more byte (refused) so it calls on_writable later.
          mux_->write(yid, BytesView(s.sendq.data() + s.sendq_off, 1));
        }
      } else if (s.fin_requested && !s.fin_sent) {
        s.fin_sent = true;
        mux_->close(yid);
      }
    } else if (s.fin_requested && !s.fin_sent) {
      s.fin_sent = true;
      mux_->close(yid);
    }
    if (s.gate->want_writable.load() && s.gate->queued.load() <= hwm / 2 && s.sink && !s.ended) {
      s.gate->want_writable = false;
      s.sink->writable(s);
    }
    if (phase_ == Phase::closed) return;
  }
  mux_->take_output(mux_out_);
}

void Connection::schedule_flush() {
  if (flush_scheduled_ || phase_ == Phase::closed) return;
  flush_scheduled_ = true;
  asio::post(node_.io(), [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->graveyard_.clear();
    if (self->phase_ == Phase::closed) return;
    self->pump();
    self->flush();
  });
}

void Connection::flush() {
  if (phase_ == Phase::closed) return;
  if (mux_) mux_->take_output(mux_out_);
  if (!mux_out_.empty() && cipher_) {
    if (!cipher_->encrypt(mux_out_, wbuf_)) {  // only when OpenSSL fails: the frames cannot go on
      abort(CHORUS_E_PROTOCOL, "cannot encrypt: " + cipher_->error());
      return;
    }
    mux_out_.clear();
  }
  start_write();
}

void Connection::start_write() {
  if (writing_ || wbuf_.empty() || phase_ == Phase::closed) return;
  writing_ = true;
  wbuf_inflight_.swap(wbuf_);
  wbuf_.clear();
  asio::async_write(socket_, asio::buffer(wbuf_inflight_), whole_buffer,
                    [self = shared_from_this()](const boost::system::error_code &ec, size_t n) {
                      self->writing_ = false;
                      self->wbuf_inflight_.clear();
                      if (self->phase_ == Phase::closed) return;
                      if (ec) {
                        self->abort(CHORUS_E_IO, "write failed: " + ec.message());
                        return;
                      }
                      self->node_.stats().bytes_out += n;
                      self->pump();
                      self->flush();
                      if (self->read_blocked_ && self->backlog() <= kReadPauseBacklog / 2) self->read_more();
                    });
}

}  // namespace chorus::p2p
