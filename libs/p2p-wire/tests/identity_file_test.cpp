#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "wire/identity.hpp"

using namespace chorus::p2p;
namespace fs = std::filesystem;

namespace {

constexpr const char *kPrivProto =
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b8"
    "71c3cacf6010f0e42d474fce27e";

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "p2p-wire-key-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "node.key").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_file(const Bytes &content, mode_t mode) {
    {
      std::ofstream f(path_, std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char *>(content.data()), static_cast<std::streamsize>(content.size()));
    }
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
  }

  Bytes read_file() {
    std::ifstream f(path_, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
  }

  fs::path dir_;
  std::string path_;
};

}  // namespace

TEST_F(KeyFileTest, CreatesWithMode0600AndReusesIt) {
  std::string err;
  auto a = Identity::load_or_create(path_, &err);
  ASSERT_TRUE(a) << err;
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  Bytes content = read_file();
  ASSERT_EQ(content.size(), 68u);
  EXPECT_EQ(to_hex(BytesView(content).first(4)), "08011240");
  EXPECT_EQ(content, a->private_key_protobuf());

  auto b = Identity::load_or_create(path_, &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(a->peer_id(), b->peer_id());
  EXPECT_EQ(read_file(), content);
}

TEST_F(KeyFileTest, LoadsAGoOrJsKeyFile) {
  write_file(*from_hex(kPrivProto), 0600);
  std::string err;
  auto id = Identity::load_or_create(path_, &err);
  ASSERT_TRUE(id) << err;
  EXPECT_EQ(id->peer_id().to_base58(), "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq");
}

TEST_F(KeyFileTest, AcceptsLegacy96ByteForm) {
  Bytes key = *from_hex(kPrivProto);
  Bytes legacy = {0x08, 0x01, 0x12, 0x60};  // Data = seed || pk || pk
  legacy.insert(legacy.end(), key.begin() + 4, key.end());
  legacy.insert(legacy.end(), key.end() - 32, key.end());
  ASSERT_EQ(legacy.size(), 100u);
  write_file(legacy, 0600);
  std::string err;
  auto id = Identity::load_or_create(path_, &err);
  ASSERT_TRUE(id) << err;
  EXPECT_EQ(id->peer_id().to_base58(), "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq");
}

TEST_F(KeyFileTest, RefusesLoosePermissions) {
  write_file(*from_hex(kPrivProto), 0644);
  std::string err;
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_EQ(err, "key file " + path_ + " has mode 0644; it must be 0600 (chmod 600 " + path_ + ")");
  ASSERT_EQ(::chmod(path_.c_str(), 0640), 0);
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  ASSERT_EQ(::chmod(path_.c_str(), 0400), 0);  // read-only for the owner is fine
  EXPECT_TRUE(Identity::load_or_create(path_, &err)) << err;
}

TEST_F(KeyFileTest, RefusesWrongSize) {
  Bytes content = *from_hex(kPrivProto);
  content.pop_back();
  write_file(content, 0600);
  std::string err;
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("67 bytes; expected 68"), std::string::npos) << err;
  write_file(Bytes(), 0600);
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("0 bytes"), std::string::npos) << err;
  write_file(Bytes(5000, 1), 0600);
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("more than 100 bytes"), std::string::npos) << err;
}

TEST_F(KeyFileTest, RefusesWrongKeyTypeAndMismatchedKey) {
  Bytes content = *from_hex(kPrivProto);
  content[1] = 0x02;  // secp256k1
  write_file(content, 0600);
  std::string err;
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("not Ed25519"), std::string::npos) << err;

  content = *from_hex(kPrivProto);
  content.back() ^= 1;  // public half no longer matches the seed
  write_file(content, 0600);
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("does not match"), std::string::npos) << err;

  content = *from_hex(kPrivProto);
  content[2] = 0x1a;  // field 3 instead of Data
  write_file(content, 0600);
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("PrivateKey protobuf"), std::string::npos) << err;
}

TEST_F(KeyFileTest, MissingParentDirectory) {
  std::string path = (dir_ / "no-such-dir" / "node.key").string();
  std::string err;
  EXPECT_FALSE(Identity::load_or_create(path, &err));
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir_ / "no-such-dir"));
}

TEST_F(KeyFileTest, RefusesDirectory) {
  fs::create_directory(path_);
  ::chmod(path_.c_str(), 0700);
  std::string err;
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
}

TEST_F(KeyFileTest, FollowsSymlinkButNeverCreatesThroughADanglingOne) {
  std::string target = (dir_ / "real.key").string();
  fs::create_symlink(target, path_);
  std::string err;
  EXPECT_FALSE(Identity::load_or_create(path_, &err));
  EXPECT_NE(err.find("dangling symlink"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(target));

  auto created = Identity::load_or_create(target, &err);
  ASSERT_TRUE(created) << err;
  auto via_link = Identity::load_or_create(path_, &err);
  ASSERT_TRUE(via_link) << err;
  EXPECT_EQ(via_link->peer_id(), created->peer_id());
}
