#include <gtest/gtest.h>

#include "wire/multistream.hpp"

using namespace chorus::p2p;

namespace {

Bytes lines(std::initializer_list<std::string_view> ls) {
  Bytes out;
  for (auto l : ls) {
    append_uvarint(out, l.size() + 1);
    append(out, as_bytes(l));
    out.push_back('\n');
  }
  return out;
}

Bytes output_of(Multistream &m) {
  Bytes out;
  m.take_output(out);
  return out;
}

// Shuttles bytes between two negotiators, delivering `chunk` bytes at a time, until neither has output.
void run(Multistream &a, Multistream &b, size_t chunk) {
  Bytes a_in, b_in;  // bytes queued for delivery to a and b
  for (int round = 0; round < 1000; ++round) {
    a.take_output(b_in);
    b.take_output(a_in);
    if (a_in.empty() && b_in.empty()) return;
    auto deliver = [chunk](Multistream &m, Bytes &in) {
      size_t n = std::min(chunk, in.size());
      if (n == 0 || m.state() != Multistream::State::negotiating) {
        in.clear();
        return;
      }
      size_t consumed = 0;
      m.feed(BytesView(in).first(n), consumed);
      ASSERT_EQ(consumed, n);  // only negotiation traffic flows here
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    };
    deliver(a, a_in);
    deliver(b, b_in);
  }
  FAIL() << "negotiation did not settle";
}

}  // namespace

TEST(Multistream, InitiatorQueuesHeaderAndProposalTogether) {
  Multistream m = Multistream::initiator({"/noise"});
  EXPECT_EQ(to_hex(output_of(m)), "132f6d756c746973747265616d2f312e302e300a" "072f6e6f6973650a");
  EXPECT_FALSE(m.has_output());
  EXPECT_EQ(m.state(), Multistream::State::negotiating);
}

TEST(Multistream, ResponderQueuesHeader) {
  Multistream m = Multistream::responder({"/noise"});
  EXPECT_EQ(output_of(m), lines({"/multistream/1.0.0"}));
}

TEST(Multistream, InitiatorAcceptsEcho) {
  Multistream m = Multistream::initiator({"/noise"});
  output_of(m);
  Bytes reply = lines({"/multistream/1.0.0", "/noise"});
  size_t consumed = 0;
  EXPECT_EQ(m.feed(reply, consumed), Multistream::State::done);
  EXPECT_EQ(consumed, reply.size());
  EXPECT_EQ(m.protocol(), "/noise");
}

TEST(Multistream, InitiatorLeavesProtocolBytesAfterEcho) {
  Multistream m = Multistream::initiator({"/noise"});
  Bytes reply = lines({"/multistream/1.0.0", "/noise"});
  size_t negotiation = reply.size();
  reply.insert(reply.end(), {0x00, 0x20, 0xaa});
  size_t consumed = 0;
  EXPECT_EQ(m.feed(reply, consumed), Multistream::State::done);
  EXPECT_EQ(consumed, negotiation);
  size_t again = 99;
  EXPECT_EQ(m.feed(BytesView(reply).subspan(consumed), again), Multistream::State::done);
  EXPECT_EQ(again, 0u);
}

TEST(Multistream, InitiatorFallsBackOnNa) {
  Multistream m = Multistream::initiator({"/meshsub/1.2.0", "/meshsub/1.1.0"});
  output_of(m);
  size_t consumed = 0;
  EXPECT_EQ(m.feed(lines({"/multistream/1.0.0", "na"}), consumed), Multistream::State::negotiating);
  EXPECT_EQ(output_of(m), lines({"/meshsub/1.1.0"}));
  EXPECT_EQ(m.feed(lines({"/meshsub/1.1.0"}), consumed), Multistream::State::done);
  EXPECT_EQ(m.protocol(), "/meshsub/1.1.0");
}

TEST(Multistream, InitiatorFailsWhenAllRejected) {
  Multistream m = Multistream::initiator({"/a", "/b"});
  size_t consumed = 0;
  EXPECT_EQ(m.feed(lines({"/multistream/1.0.0", "na", "na"}), consumed), Multistream::State::failed);
  EXPECT_EQ(m.error(), "no protocol accepted (tried: /a, /b)");
}

TEST(Multistream, InitiatorRejectsUnexpectedReplyAndWrongHeader) {
  Multistream m = Multistream::initiator({"/a"});
  size_t consumed = 0;
  EXPECT_EQ(m.feed(lines({"/multistream/1.0.0", "/b"}), consumed), Multistream::State::failed);
  EXPECT_NE(m.error().find("unexpected reply '/b'"), std::string::npos) << m.error();

  Multistream h = Multistream::initiator({"/a"});
  EXPECT_EQ(h.feed(lines({"/multistream/2.0.0"}), consumed), Multistream::State::failed);
  EXPECT_NE(h.error().find("/multistream/1.0.0"), std::string::npos) << h.error();
  // HTTP instead of multistream: "GET / ..." decodes as a length of 71 and no newline at its end.
  Multistream g = Multistream::initiator({"/a"});
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(60, 'x');
  EXPECT_EQ(g.feed(as_bytes(http), consumed), Multistream::State::failed);
}

TEST(Multistream, EmptyProposalListFails) {
  Multistream m = Multistream::initiator({});
  EXPECT_EQ(m.state(), Multistream::State::failed);
  EXPECT_EQ(m.error(), "no protocols to propose");
}

TEST(Multistream, ResponderEchoesSupported) {
  Multistream m = Multistream::responder({"/yamux/1.0.0"});
  output_of(m);
  size_t consumed = 0;
  EXPECT_EQ(m.feed(lines({"/multistream/1.0.0", "/yamux/1.0.0"}), consumed), Multistream::State::done);
  EXPECT_EQ(m.protocol(), "/yamux/1.0.0");
  EXPECT_EQ(output_of(m), lines({"/yamux/1.0.0"}));
}

TEST(Multistream, ResponderAnswersNaAndLs) {
  Multistream m = Multistream::responder({"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"});
  output_of(m);
  size_t consumed = 0;
  EXPECT_EQ(m.feed(lines({"/multistream/1.0.0", "/meshsub/1.2.0"}), consumed), Multistream::State::negotiating);
  EXPECT_EQ(output_of(m), lines({"na"}));
  EXPECT_EQ(m.feed(lines({"ls"}), consumed), Multistream::State::negotiating);
  Bytes body = lines({"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"});
  body.push_back('\n');
  Bytes expected;
  append_lp(expected, body);
  EXPECT_EQ(output_of(m), expected);
  EXPECT_EQ(m.feed(lines({"/ipfs/ping/1.0.0"}), consumed), Multistream::State::done);
  EXPECT_EQ(m.protocol(), "/ipfs/ping/1.0.0");
}

TEST(Multistream, ResponderKeepsPipelinedData) {
  // go-libp2p lazy stream: header, proposal and the first protocol bytes in one write.
  Multistream m = Multistream::responder({"/ipfs/ping/1.0.0"});
  Bytes in = lines({"/multistream/1.0.0", "/ipfs/ping/1.0.0"});
  size_t negotiation = in.size();
  Bytes payload(32, 0x5a);
  append(in, payload);
  size_t consumed = 0;
  EXPECT_EQ(m.feed(in, consumed), Multistream::State::done);
  EXPECT_EQ(consumed, negotiation);
  EXPECT_EQ(Bytes(in.begin() + static_cast<std::ptrdiff_t>(consumed), in.end()), payload);
}

TEST(Multistream, ResponderGivesUpAfterTooManyProposals) {
  Multistream m = Multistream::responder({"/x"});
  size_t consumed = 0;
  m.feed(lines({"/multistream/1.0.0"}), consumed);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(m.feed(lines({"/nope"}), consumed), Multistream::State::negotiating) << i;
  }
  EXPECT_EQ(m.feed(lines({"/nope"}), consumed), Multistream::State::failed);
  EXPECT_NE(m.error().find("16"), std::string::npos) << m.error();
}

TEST(Multistream, OversizeAndMalformedLines) {
  size_t consumed = 0;
  Multistream big = Multistream::responder({"/x"});
  Bytes huge;
  append_uvarint(huge, 1025);
  EXPECT_EQ(big.feed(huge, consumed), Multistream::State::failed);
  EXPECT_NE(big.error().find("1024"), std::string::npos) << big.error();

  Multistream ok = Multistream::responder({"/x"});
  Bytes max_line = lines({"/multistream/1.0.0", std::string(1023, 'p')});
  EXPECT_EQ(ok.feed(max_line, consumed), Multistream::State::negotiating);
  EXPECT_EQ(output_of(ok), lines({"/multistream/1.0.0", "na"}));

  Multistream no_newline = Multistream::responder({"/x"});
  Bytes bad = {0x03, 'a', 'b', 'c'};
  EXPECT_EQ(no_newline.feed(bad, consumed), Multistream::State::failed);
  EXPECT_NE(no_newline.error().find("newline"), std::string::npos);

  Multistream empty = Multistream::responder({"/x"});
  Bytes zero = {0x00};
  EXPECT_EQ(empty.feed(zero, consumed), Multistream::State::failed);

  Multistream nonminimal = Multistream::responder({"/x"});
  Bytes nm = {0x83, 0x00, 'n', 'a', '\n'};
  EXPECT_EQ(nonminimal.feed(nm, consumed), Multistream::State::failed);
  EXPECT_NE(nonminimal.error().find("length prefix"), std::string::npos);
}

TEST(Multistream, BothRolesAgreeAtEveryChunkSize) {
  for (size_t chunk : {1, 2, 3, 7, 1000}) {
    Multistream a = Multistream::initiator({"/meshsub/1.2.0", "/meshsub/1.1.0"});
    Multistream b = Multistream::responder({"/ipfs/id/1.0.0", "/meshsub/1.1.0"});
    run(a, b, chunk);
    ASSERT_EQ(a.state(), Multistream::State::done) << chunk << " " << a.error();
    ASSERT_EQ(b.state(), Multistream::State::done) << chunk << " " << b.error();
    EXPECT_EQ(a.protocol(), "/meshsub/1.1.0");
    EXPECT_EQ(b.protocol(), "/meshsub/1.1.0");
  }
}

TEST(Multistream, BothRolesFailCleanlyWithoutCommonProtocol) {
  Multistream a = Multistream::initiator({"/a", "/b"});
  Multistream b = Multistream::responder({"/c"});
  run(a, b, 5);
  EXPECT_EQ(a.state(), Multistream::State::failed);
  EXPECT_EQ(b.state(), Multistream::State::negotiating);  // the responder waits for more proposals
}
