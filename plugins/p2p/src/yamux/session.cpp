#include "yamux/session.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

namespace chorus::p2p::yamux {

namespace {

// A Data frame longer than this is refused even before the window check. No implementation sends
// frames near it (js/go: 64 KiB, rust: 16 KiB, hashicorp: up to the window, at most 16 MiB).
constexpr uint32_t kMaxDataFrame = 16 * 1024 * 1024;
// How many closed peer-opened ids are remembered to catch a SYN that reuses one.
constexpr size_t kRecentClosedCapacity = 4096;
// Round-trip guess for auto-tuning until one of our pings is answered.
constexpr uint64_t kDefaultRttUs = 5000;

uint64_t now_us() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

Config normalized(Config c) {
  uint64_t cap = std::max<uint64_t>(kDefaultWindow, std::min<uint64_t>(c.max_window, c.max_inbound_buffer_per_stream));
  c.max_window = static_cast<uint32_t>(cap);
  c.initial_window = std::clamp(c.initial_window, kDefaultWindow, c.max_window);
  c.max_frame_payload = std::clamp<uint32_t>(c.max_frame_payload, 1, kMaxDataFrame);
  return c;
}

}  // namespace

Session::Session(Config config, Handler &handler)
    : config_(normalized(config)), handler_(handler), next_id_(config_.client ? 1 : 2), rtt_us_(kDefaultRttUs) {
  out_.reserve(4096);
}

Session::Stream *Session::find(uint32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

void Session::queue_frame(FrameType type, uint16_t flags, uint32_t id, uint32_t length) {
  append_header(out_, Header{type, flags, id, length});
}

bool Session::fail(std::string reason) {
  if (!failed_) {
    failed_ = true;
    error_ = std::move(reason);
    queue_frame(FrameType::go_away, 0, 0, kGoAwayProtocolError);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// Input

Session::Status Session::feed(BytesView in) {
  if (failed_) return Status::failed;
  const uint8_t *p = in.data();
  const uint8_t *end = p + in.size();
  while (p < end) {
    if (payload_left_ > 0) {
      size_t n = std::min<size_t>(payload_left_, static_cast<size_t>(end - p));
      const uint8_t *chunk = p;
      p += n;
      payload_left_ -= static_cast<uint32_t>(n);
      if (payload_deliver_) deliver_payload(BytesView(chunk, n));
      if (payload_left_ == 0) finish_stream_frame(payload_id_, payload_flags_);
      if (failed_) return Status::failed;
      continue;
    }

    Header h;
    const char *bad;
    if (header_have_ == 0 && static_cast<size_t>(end - p) >= kHeaderSize) {
      bad = decode_header(p, h);  // the common case: the whole header is in this input
      p += kHeaderSize;
    } else {
      size_t n = std::min(kHeaderSize - header_have_, static_cast<size_t>(end - p));
      std::copy(p, p + n, header_buf_ + header_have_);
      header_have_ += n;
      p += n;
      if (header_have_ < kHeaderSize) break;
      header_have_ = 0;
      bad = decode_header(header_buf_, h);
    }
    if (bad) {
      fail(bad);
      return Status::failed;
    }
    if (!handle_header(h) || failed_) return Status::failed;
  }
  return Status::ok;
}

bool Session::handle_header(const Header &h) {
  switch (h.type) {
    case FrameType::ping:
      if (h.flags & kFlagSyn) {
        queue_frame(FrameType::ping, kFlagAck, 0, h.length);
      } else if ((h.flags & kFlagAck) && ping_outstanding_ && h.length == ping_opaque_) {
        ping_outstanding_ = false;
        rtt_us_ = std::max<uint64_t>(1, now_us() - ping_sent_us_);
      }
      return true;
    case FrameType::go_away:
      remote_go_away_ = true;
      handler_.on_go_away(h.length);
      return true;
    case FrameType::data:
    case FrameType::window_update:
      return handle_stream_frame(h);
  }
  return true;
}

bool Session::handle_stream_frame(const Header &h) {
  const uint32_t id = h.stream_id;
  const bool is_data = h.type == FrameType::data;
  if (id == 0) return fail("data or window update frame on stream 0");
  if (is_data && h.length > kMaxDataFrame)
    return fail("data frame of " + std::to_string(h.length) + " bytes exceeds the 16 MiB limit");

  Stream *s = find(id);
  if (h.flags & kFlagSyn) {
    if (s) return fail("SYN for stream " + std::to_string(id) + ", which is already open");
    if (is_local_id(id))
      return fail("inbound SYN with our own stream id parity on stream " + std::to_string(id) +
                  " (both endpoints are " + (config_.client ? "clients)" : "servers)"));
    if (recent_closed_.count(id)) return fail("SYN reuses the id of closed stream " + std::to_string(id));
    highest_inbound_ = std::max(highest_inbound_, id);
    accept_inbound(id);
    s = find(id);  // null if refused, or if the handler reset it at once
  } else if (!s) {
    // Late frames for streams that are gone (closed, reset by us, refused) are dropped silently. An id
    // that was never opened is a protocol violation.
    bool known = is_local_id(id) ? id < next_id_ : id <= highest_inbound_;
    if (!known) return fail("frame for unknown stream " + std::to_string(id));
  }

  if (s) {
    if (s->outbound && !s->acked) {
      // ACK normally; any frame from the peer shows it accepted the stream all the same.
      s->acked = true;
      --unacked_outbound_;
    }
    if (is_data) {
      if (h.length > s->recv_window)
        return fail("data frame of " + std::to_string(h.length) + " bytes exceeds the receive window of " +
                    std::to_string(s->recv_window) + " on stream " + std::to_string(id));
      if (s->remote_fin && h.length > 0) {
        // Data after the peer's own FIN breaks this stream only.
        queue_frame(FrameType::window_update, kFlagRst, id, 0);
        erase_stream(id);
        handler_.on_stream_reset(id);
        s = nullptr;
      } else {
        s->recv_window -= h.length;
      }
    } else if (h.length > 0) {
      uint64_t grown = uint64_t{s->send_window} + h.length;
      if (grown > std::numeric_limits<uint32_t>::max())
        return fail("window update overflows the send window on stream " + std::to_string(id));
      s->send_window = static_cast<uint32_t>(grown);
      if (s->want_writable) {
        s->want_writable = false;
        handler_.on_writable(id);
      }
    }
  }

  if (is_data && h.length > 0) {
    payload_left_ = h.length;
    payload_id_ = id;
    payload_flags_ = h.flags;
    payload_deliver_ = s != nullptr;
  } else {
    finish_stream_frame(id, h.flags);
  }
  return true;
}

void Session::accept_inbound(uint32_t id) {
  if (local_go_away_ || inbound_count_ >= config_.max_inbound_streams) {
    queue_frame(FrameType::window_update, kFlagRst, id, 0);
    remember_closed(id);
    return;
  }
  Stream s;
  s.window_size = s.recv_window = config_.initial_window;
  s.last_grant_us = config_.auto_tune_window ? now_us() : 0;
  streams_.emplace(id, s);
  ++inbound_count_;
  // ACK at once (not lazily with our first data) so the opener's backlog drains even if the application
  // is slow to write; the delta raises the peer's view of our window to initial_window.
  queue_frame(FrameType::window_update, kFlagAck, id, config_.initial_window - kDefaultWindow);
  handler_.on_stream_opened(id);
}

void Session::deliver_payload(BytesView chunk) {
  Stream *s = find(payload_id_);
  if (!s) {  // the application reset the stream while its data was arriving
    payload_deliver_ = false;
    return;
  }
  s->unconsumed += static_cast<uint32_t>(chunk.size());
  handler_.on_data(payload_id_, chunk);
}

// FIN and RST take effect after the frame's payload.
void Session::finish_stream_frame(uint32_t id, uint16_t flags) {
  if (!(flags & (kFlagFin | kFlagRst))) return;
  Stream *s = find(id);
  if (!s) return;
  if (flags & kFlagRst) {
    erase_stream(id);
    handler_.on_stream_reset(id);
    return;
  }
  if (s->remote_fin) return;
  s->remote_fin = true;
  handler_.on_remote_fin(id);
  s = find(id);  // the handler may have closed or reset it
  if (s && s->local_fin) {
    erase_stream(id);
    handler_.on_stream_closed(id);
  }
}

void Session::erase_stream(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  const Stream &s = it->second;
  if (s.outbound) {
    --outbound_count_;
    if (!s.acked) --unacked_outbound_;
  } else {
    --inbound_count_;
    remember_closed(id);
  }
  streams_.erase(it);
}

void Session::remember_closed(uint32_t id) {
  if (recent_ring_.size() < kRecentClosedCapacity) {
    recent_ring_.push_back(id);
  } else {
    recent_closed_.erase(recent_ring_[recent_next_]);
    recent_ring_[recent_next_] = id;
    recent_next_ = (recent_next_ + 1) % kRecentClosedCapacity;
  }
  recent_closed_.insert(id);
}

// ---------------------------------------------------------------------------------------------------
// Output and application calls

void Session::take_output(Bytes &out) {
  if (out.empty()) {
    out.swap(out_);  // out_ keeps the caller's old capacity for the next frames
  } else {
    out.insert(out.end(), out_.begin(), out_.end());
  }
  out_.clear();
}

uint32_t Session::open_stream() {
  if (failed_ || local_go_away_ || remote_go_away_) return 0;
  if (outbound_count_ >= config_.max_outbound_streams || unacked_outbound_ >= config_.max_ack_backlog) return 0;
  if (next_id_ > std::numeric_limits<uint32_t>::max()) return 0;  // ids exhausted
  auto id = static_cast<uint32_t>(next_id_);
  next_id_ += 2;
  Stream s;
  s.window_size = s.recv_window = config_.initial_window;
  s.last_grant_us = config_.auto_tune_window ? now_us() : 0;
  s.outbound = true;
  s.acked = false;
  streams_.emplace(id, s);
  ++outbound_count_;
  ++unacked_outbound_;
  queue_frame(FrameType::window_update, kFlagSyn, id, config_.initial_window - kDefaultWindow);
  return id;
}

size_t Session::write(uint32_t id, BytesView data) {
  if (failed_ || data.empty()) return 0;
  Stream *s = find(id);
  if (!s || s->local_fin) return 0;
  size_t n = std::min<size_t>(data.size(), s->send_window);
  if (n < data.size()) s->want_writable = true;
  if (n == 0) return 0;
  const size_t frames = (n + config_.max_frame_payload - 1) / config_.max_frame_payload;
  const size_t need = out_.size() + n + frames * kHeaderSize;
  if (need > out_.capacity()) out_.reserve(std::max(need, 2 * out_.capacity()));  // keep growth geometric
  for (size_t done = 0; done < n;) {
    auto len = static_cast<uint32_t>(std::min<size_t>(n - done, config_.max_frame_payload));
    queue_frame(FrameType::data, 0, id, len);
    out_.insert(out_.end(), data.begin() + done, data.begin() + done + len);
    done += len;
  }
  s->send_window -= static_cast<uint32_t>(n);
  return n;
}

void Session::close(uint32_t id) {
  if (failed_) return;
  Stream *s = find(id);
  if (!s || s->local_fin) return;
  s->local_fin = true;
  s->want_writable = false;
  queue_frame(FrameType::window_update, kFlagFin, id, 0);
  if (s->remote_fin) {
    erase_stream(id);
    handler_.on_stream_closed(id);
  }
}

void Session::reset(uint32_t id) {
  if (!find(id)) return;
  if (!failed_) queue_frame(FrameType::window_update, kFlagRst, id, 0);  // after a failure only free the state
  erase_stream(id);
}

void Session::consume(uint32_t id, size_t n) {
  if (failed_) return;
  Stream *s = find(id);
  if (!s) return;
  auto k = static_cast<uint32_t>(std::min<size_t>(n, s->unconsumed));  // never grant more than was sent
  s->unconsumed -= k;
  s->pending_credit += k;
  // After the peer's FIN no more data comes, so no window needs returning. Otherwise batch: one update
  // per half window.
  if (!s->remote_fin && s->pending_credit >= s->window_size / 2) grant_window(id, *s);
}

void Session::grant_window(uint32_t id, Stream &s) {
  uint32_t growth = 0;
  if (config_.auto_tune_window) {
    uint64_t now = now_us();
    // Half the window drained within two round trips: the window, not the application, limits the
    // stream's throughput. Double it.
    if (s.window_size < config_.max_window && now - s.last_grant_us < 2 * rtt_us_)
      growth = std::min(s.window_size, config_.max_window - s.window_size);
    s.last_grant_us = now;
  }
  uint32_t delta = s.pending_credit + growth;
  s.window_size += growth;
  s.recv_window += delta;
  s.pending_credit = 0;
  queue_frame(FrameType::window_update, 0, id, delta);
}

void Session::ping(uint32_t opaque) {
  if (failed_) return;
  queue_frame(FrameType::ping, kFlagSyn, 0, opaque);
  ping_outstanding_ = true;
  ping_opaque_ = opaque;
  ping_sent_us_ = now_us();
}

void Session::go_away(uint32_t code) {
  if (failed_ || local_go_away_) return;
  local_go_away_ = true;
  queue_frame(FrameType::go_away, 0, 0, code);
}

uint32_t Session::send_window(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.send_window;
}

uint32_t Session::receive_window(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.window_size;
}

}  // namespace chorus::p2p::yamux
