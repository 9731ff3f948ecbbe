#include "wire/multistream.hpp"

namespace chorus::p2p {
namespace {

// Bytes are quoted in errors; keep them printable and short.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 64) out += "...";
  return out;
}

}  // namespace

Multistream::Multistream(Role role, std::vector<std::string> protocols)
    : role_(role), protocols_(std::move(protocols)) {
  queue_line(kMultistreamId);
  if (role_ == Role::initiator) {
    if (protocols_.empty()) {
      fail("no protocols to propose");
      return;
    }
    queue_line(protocols_[0]);
  }
}

Multistream Multistream::initiator(std::vector<std::string> protocols) {
  return Multistream(Role::initiator, std::move(protocols));
}

Multistream Multistream::responder(std::vector<std::string> supported) {
  return Multistream(Role::responder, std::move(supported));
}

void Multistream::queue_line(std::string_view line) {
  append_uvarint(output_, line.size() + 1);
  append(output_, as_bytes(line));
  output_.push_back('\n');
}

Multistream::State Multistream::fail(std::string why) {
  if (state_ == State::negotiating) {
    state_ = State::failed;
    error_ = std::move(why);
  }
  return state_;
}

void Multistream::take_output(Bytes &out) {
  append(out, output_);
  output_.clear();
}

Multistream::State Multistream::feed(BytesView in, size_t &consumed) {
  consumed = 0;
  const size_t total = in.size();
  while (state_ == State::negotiating && !in.empty()) {
    BytesView message;
    LpStatus st = reader_.next(in, message, scratch_);
    consumed = total - in.size();
    if (st == LpStatus::need_more) break;
    if (st == LpStatus::too_large) return fail("multistream message longer than 1024 bytes");
    if (st == LpStatus::invalid) return fail("multistream message has an invalid length prefix");
    if (message.empty() || message.back() != '\n') return fail("multistream message does not end with a newline");
    message = message.first(message.size() - 1);
    handle_line(as_string_view(message));
  }
  return state_;
}

void Multistream::handle_line(std::string_view line) {
  if (!header_seen_) {
    if (line != kMultistreamId) {
      fail("peer does not speak " + std::string(kMultistreamId) + " (got '" + printable(line) + "')");
      return;
    }
    header_seen_ = true;
    return;
  }

  if (role_ == Role::initiator) {
    if (line == protocols_[proposal_]) {
      protocol_ = protocols_[proposal_];
      state_ = State::done;
      return;
    }
    if (line != "na") {
      fail("unexpected reply '" + printable(line) + "' to proposal " + protocols_[proposal_]);
      return;
    }
    if (++proposal_ == protocols_.size()) {
      std::string tried;
      for (const auto &p : protocols_) tried += (tried.empty() ? "" : ", ") + p;
      fail("no protocol accepted (tried: " + tried + ")");
      return;
    }
    queue_line(protocols_[proposal_]);
    return;
  }

  // Responder.
  for (const auto &p : protocols_) {
    if (line == p) {
      queue_line(p);
      protocol_ = p;
      state_ = State::done;
      return;
    }
  }
  if (++rejects_ > kMultistreamMaxRejects) {
    fail("peer made more than 16 proposals without agreement");
    return;
  }
  if (line == "ls") {
    // One message whose body is the LP-encoded "proto\n" lines followed by "\n".
    Bytes body;
    for (const auto &p : protocols_) {
      append_uvarint(body, p.size() + 1);
      append(body, as_bytes(p));
      body.push_back('\n');
    }
    body.push_back('\n');
    append_lp(output_, body);
    return;
  }
  queue_line("na");
}

}  // namespace chorus::p2p
