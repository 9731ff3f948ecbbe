// multistream-select 1.0 protocol negotiation, without I/O.
//
// The caller moves bytes: feed() what arrives, send what take_output() hands back. Construction queues
// the opening bytes (the initiator's header and first proposal go out in one buffer, as peers expect).
// feed() consumes only negotiation bytes: anything after the final message (go-libp2p pipelines protocol
// data right behind its proposal) is left unconsumed for the negotiated protocol.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "wire/bytes.hpp"
#include "wire/varint.hpp"

namespace chorus::p2p {

constexpr std::string_view kMultistreamId = "/multistream/1.0.0";
constexpr size_t kMultistreamMaxLine = 1024;    // js caps protocol lines at 1024 bytes
constexpr size_t kMultistreamMaxRejects = 16;   // proposals a responder answers before giving up

class Multistream {
 public:
  enum class State { negotiating, done, failed };
  enum class Role { initiator, responder };

  // Proposes protocols in order, moving to the next one on "na".
  static Multistream initiator(std::vector<std::string> protocols_in_preference_order);
  // Accepts the first proposal found in supported; answers others with "na" and "ls" with the list.
  static Multistream responder(std::vector<std::string> supported);

  // Processes bytes from the peer; consumed tells how many bytes of in were negotiation traffic
  // (partial messages are buffered internally and count as consumed).
  State feed(BytesView in, size_t &consumed);
  // Appends the bytes to send to the peer (may be none).
  void take_output(Bytes &out);
  bool has_output() const { return !output_.empty(); }

  State state() const { return state_; }
  Role role() const { return role_; }
  // The negotiated protocol once state() is done.
  const std::string &protocol() const { return protocol_; }
  // Why negotiation failed, once state() is failed.
  const std::string &error() const { return error_; }

 private:
  Multistream(Role role, std::vector<std::string> protocols);
  void queue_line(std::string_view line);
  State fail(std::string why);
  void handle_line(std::string_view line);

  Role role_;
  std::vector<std::string> protocols_;
  size_t proposal_ = 0;  // initiator: index of the protocol currently proposed
  size_t rejects_ = 0;   // responder: proposals answered with "na"
  bool header_seen_ = false;
  State state_ = State::negotiating;
  std::string protocol_;
  std::string error_;
  Bytes output_;
  LpReader reader_{kMultistreamMaxLine};
  Bytes scratch_;
};

}  // namespace chorus::p2p
