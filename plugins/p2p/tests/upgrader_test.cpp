// The upgrade pipeline in memory: two Upgraders exchange their bytes until both are muxed, or one
// fails with the typed error the connection counts and reports.
#include <gtest/gtest.h>
#include <sodium.h>

#include <optional>

#include "noise/noise_transport.hpp"
#include "upgrader.hpp"
#include "wire/identity.hpp"

namespace chorus::p2p {
namespace {

struct Side {
  Upgrader up;
  Bytes inbox;  // bytes from the other side not fed yet
  std::optional<NoiseTransport> cipher;
  Upgrader::Status status = Upgrader::Status::running;
  Side(bool initiator, const Identity &id, std::optional<PeerId> expected) : up(initiator, id, std::move(expected)) {}
};

// Feeds `s` what it has received; what it answers goes to `peer`'s inbox.
void step(Side &s, Side &peer) {
  if (s.status == Upgrader::Status::failed || s.status == Upgrader::Status::muxed) return;
  Bytes out;
  if (!s.cipher) {
    size_t used = 0;
    s.status = s.up.feed_insecure(s.inbox, used, out);
    s.inbox.erase(s.inbox.begin(), s.inbox.begin() + static_cast<ptrdiff_t>(used));
    append(peer.inbox, out);
    if (s.status != Upgrader::Status::secured) return;
    s.cipher.emplace(s.up.take_transport());
    out.clear();
    s.up.start_muxer(out);
    ASSERT_TRUE(s.cipher->encrypt(out, peer.inbox));
    s.status = Upgrader::Status::running;
    return;
  }
  Bytes plain;
  size_t consumed = 0;
  ASSERT_NE(s.cipher->decrypt(s.inbox, consumed, plain), NoiseTransport::Status::failed);
  s.inbox.erase(s.inbox.begin(), s.inbox.begin() + static_cast<ptrdiff_t>(consumed));
  if (plain.empty()) return;
  size_t used = 0;
  s.status = s.up.feed_muxer(plain, used, out);
  if (!out.empty()) {
    ASSERT_TRUE(s.cipher->encrypt(out, peer.inbox));
  }
}

void run(Side &a, Side &b) {
  Bytes out;
  a.up.start(out);
  append(b.inbox, out);
  out.clear();
  b.up.start(out);
  append(a.inbox, out);
  for (int i = 0; i < 20; ++i) {
    step(a, b);
    step(b, a);
  }
}

class UpgraderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_GE(sodium_init(), 0); }
};

TEST_F(UpgraderTest, BothSidesReachTheMuxerAndAgreeOnWhoIsWho) {
  const Identity a = Identity::generate(), b = Identity::generate();
  Side ini(true, a, b.peer_id()), resp(false, b, std::nullopt);
  run(ini, resp);
  EXPECT_EQ(ini.status, Upgrader::Status::muxed) << ini.up.error_text();
  EXPECT_EQ(resp.status, Upgrader::Status::muxed) << resp.up.error_text();
  EXPECT_EQ(ini.up.remote_peer(), b.peer_id());
  EXPECT_EQ(resp.up.remote_peer(), a.peer_id());
}

TEST_F(UpgraderTest, AnotherIdentityThanTheDialledOneIsAPeerIdMismatch) {
  const Identity a = Identity::generate(), b = Identity::generate(), expected = Identity::generate();
  Side ini(true, a, expected.peer_id()), resp(false, b, std::nullopt);
  run(ini, resp);
  ASSERT_EQ(ini.status, Upgrader::Status::failed);
  EXPECT_EQ(ini.up.error(), UpgradeError::peer_id_mismatch);
  EXPECT_EQ(upgrade_error_status(ini.up.error()), CHORUS_E_PROTOCOL);
  EXPECT_STREQ(upgrade_error_label(ini.up.error()), "peer_id_mismatch");
}

TEST_F(UpgraderTest, GarbageInsteadOfMultistreamIsASecurityNegotiationFailure) {
  const Identity a = Identity::generate();
  Upgrader resp(false, a, std::nullopt);
  Bytes out;
  resp.start(out);
  const Bytes junk = {0x13, '/', 'n', 'o', 't', '-', 'm', 'u', 'l', 't', 'i', 's', 't', 'r', 'e', 'a', 'm', '/', '1', '\n'};
  size_t used = 0;
  out.clear();
  const auto st = resp.feed_insecure(junk, used, out);
  ASSERT_EQ(st, Upgrader::Status::failed);
  EXPECT_EQ(resp.error(), UpgradeError::security_negotiation);
  EXPECT_STREQ(upgrade_error_label(resp.error()), "multistream");
}

TEST(UpgradeError, EachErrorHasTheMetricLabelAndStatusOfItsKind) {
  EXPECT_STREQ(upgrade_error_label(UpgradeError::timeout), "timeout");
  EXPECT_STREQ(upgrade_error_label(UpgradeError::io), "io");
  EXPECT_STREQ(upgrade_error_label(UpgradeError::noise), "noise");
  EXPECT_STREQ(upgrade_error_label(UpgradeError::muxer_negotiation), "multistream");
  EXPECT_EQ(upgrade_error_status(UpgradeError::timeout), CHORUS_E_TIMEOUT);
  EXPECT_EQ(upgrade_error_status(UpgradeError::io), CHORUS_E_IO);
  EXPECT_EQ(upgrade_error_status(UpgradeError::noise), CHORUS_E_PROTOCOL);
}

}  // namespace
}  // namespace chorus::p2p
