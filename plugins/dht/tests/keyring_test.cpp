// The role keyring: authority levels, key files (format, permissions, atomic creation), the admin
// (master) role, recipients per role, and the "not authorised" refusal.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "crypto/keyring.hpp"

namespace chorus::dht {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dht-keyring-test.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path &path() const { return path_; }

 private:
  fs::path path_;
};

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

mode_t mode_of(const fs::path &p) {
  struct stat st{};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

void write_text(const fs::path &p, const std::string &text, mode_t mode) {
  {
    std::ofstream out(p, std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(::chmod(p.c_str(), mode), 0);
}

// The message of the KeyringError that fn throws ("" when it does not throw).
template <class Fn>
std::string keyring_error(Fn &&fn) {
  try {
    fn();
  } catch (const KeyringError &e) {
    return e.what();
  }
  return "";
}

TEST(KeyringAuthority, NamesRoundTrip) {
  const std::pair<Authority, const char *> all[] = {{Authority::kMaster, "master"},
                                                    {Authority::kDecision, "decision"},
                                                    {Authority::kCoordination, "coordination"},
                                                    {Authority::kSuggestion, "suggestion"},
                                                    {Authority::kReadOnly, "read_only"}};
  for (auto [authority, name] : all) {
    EXPECT_STREQ(authority_name(authority), name);
    EXPECT_EQ(parse_authority(name), authority);
  }
  EXPECT_EQ(parse_authority("admin"), std::nullopt);
  EXPECT_EQ(parse_authority("Master"), std::nullopt);
  EXPECT_EQ(parse_authority(""), std::nullopt);
}

TEST(KeyringRoles, RoleNames) {
  EXPECT_TRUE(valid_role_name("admin"));
  EXPECT_TRUE(valid_role_name("senior_software-architect.v2"));
  EXPECT_FALSE(valid_role_name(""));
  EXPECT_FALSE(valid_role_name(".hidden"));
  EXPECT_FALSE(valid_role_name("../escape"));
  EXPECT_FALSE(valid_role_name("a/b"));
  EXPECT_FALSE(valid_role_name("with space"));
  EXPECT_FALSE(valid_role_name(std::string(65, 'a')));
}

TEST(KeyringFiles, GenerateWritesAPrivateFileThatLoads) {
  TempDir dir;
  RoleKey made = Keyring::generate_role(dir.path(), "architect", Authority::kDecision);
  fs::path file = dir.path() / "roles" / "architect.key";
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(mode_of(dir.path() / "roles"), 0700u);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path() / "roles"), fs::directory_iterator()), 1);

  std::ifstream in(file);
  std::string l1, l2, l3;
  std::getline(in, l1);
  std::getline(in, l2);
  std::getline(in, l3);
  EXPECT_EQ(l1, "# authority: decision");
  EXPECT_EQ(l2, "# recipient: " + made.identity.recipient().to_string());
  EXPECT_EQ(l3, made.identity.to_string());

  Keyring ring = Keyring::load(dir.path());
  ASSERT_TRUE(ring.holds("architect"));
  EXPECT_EQ(ring.authority_of("architect"), Authority::kDecision);
  EXPECT_EQ(ring.own_roles().at("architect").identity.secret(), made.identity.secret());
}

TEST(KeyringFiles, GenerateCreatesMissingDirectories) {
  TempDir dir;
  fs::path nested = dir.path() / "state" / "dht" / "keys";
  Keyring::generate_role(nested, "ops", Authority::kCoordination);
  EXPECT_EQ(mode_of(nested / "roles"), 0700u);
  EXPECT_EQ(Keyring::load(nested).authority_of("ops"), Authority::kCoordination);
}

TEST(KeyringFiles, GenerateRefusesToReplaceAKey) {
  TempDir dir;
  RoleKey first = Keyring::generate_role(dir.path(), "dev", Authority::kSuggestion);
  std::string err = keyring_error([&] { Keyring::generate_role(dir.path(), "dev", Authority::kMaster); });
  EXPECT_NE(err.find("exists"), std::string::npos) << err;
  Keyring ring = Keyring::load(dir.path());
  EXPECT_EQ(ring.own_roles().at("dev").identity.secret(), first.identity.secret());
  EXPECT_EQ(ring.authority_of("dev"), Authority::kSuggestion);
  EXPECT_NE(keyring_error([&] { Keyring::generate_role(dir.path(), "../x", Authority::kMaster); }), "");
}

TEST(KeyringFiles, MissingDirectoryIsAnEmptyKeyring) {
  TempDir dir;
  Keyring ring = Keyring::load(dir.path() / "nothing-here");
  EXPECT_TRUE(ring.own_roles().empty());
  EXPECT_TRUE(ring.identities().empty());
  EXPECT_FALSE(ring.can_decrypt("any"));
}

TEST(KeyringFiles, GroupOrWorldAccessibleKeyIsRefusedByName) {
  TempDir dir;
  Keyring::generate_role(dir.path(), "dev", Authority::kSuggestion);
  fs::path file = dir.path() / "roles" / "dev.key";
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0660}) {
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    std::string err = keyring_error([&] { Keyring::load(dir.path()); });
    EXPECT_NE(err.find(file.string()), std::string::npos) << std::oct << mode << ": " << err;
    EXPECT_NE(err.find("group or others"), std::string::npos) << err;
  }
  ASSERT_EQ(::chmod(file.c_str(), 0400), 0);  // read-only for the owner is fine
  EXPECT_NO_THROW(Keyring::load(dir.path()));
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  EXPECT_NO_THROW(Keyring::load(dir.path()));
}

TEST(KeyringFiles, OpenKeyDirectoryIsRefusedByName) {
  TempDir dir;
  Keyring::generate_role(dir.path(), "dev", Authority::kSuggestion);
  fs::path roles = dir.path() / "roles";
  for (mode_t mode : {0755, 0750, 0705, 0770}) {
    ASSERT_EQ(::chmod(roles.c_str(), mode), 0);
    std::string err = keyring_error([&] { Keyring::load(dir.path()); });
    EXPECT_NE(err.find(roles.string()), std::string::npos) << std::oct << mode << ": " << err;
    EXPECT_NE(keyring_error([&] { Keyring::generate_role(dir.path(), "other", Authority::kMaster); }), "");
  }
  ASSERT_EQ(::chmod(roles.c_str(), 0700), 0);
  EXPECT_NO_THROW(Keyring::load(dir.path()));
}

TEST(KeyringFiles, SymlinkedKeyIsRefused) {
  TempDir dir;
  Keyring::generate_role(dir.path(), "dev", Authority::kSuggestion);
  fs::create_symlink(dir.path() / "roles" / "dev.key", dir.path() / "roles" / "alias.key");
  std::string err = keyring_error([&] { Keyring::load(dir.path()); });
  EXPECT_NE(err.find("alias.key"), std::string::npos) << err;
}

TEST(KeyringFiles, AgeKeygenFormatIsAccepted) {
  // What age-keygen writes, with no authority line: the configured authority applies, else read_only.
  TempDir dir;
  fs::create_directory(dir.path() / "roles");
  ::chmod((dir.path() / "roles").c_str(), 0700);
  age::X25519Identity a = age::X25519Identity::generate(), b = age::X25519Identity::generate();
  write_text(dir.path() / "roles" / "ops.key",
             "# created: 2026-01-01T00:00:00Z\n# public key: " + a.recipient().to_string() + "\n" + a.to_string() +
                 "\n",
             0600);
  write_text(dir.path() / "roles" / "qa.key", "\n" + b.to_string() + "\r\n\n", 0600);
  write_text(dir.path() / "roles" / "notes.txt", "ignored: not a .key file", 0644);
  std::map<std::string, RoleRecipient> configured = {{"ops", {a.recipient(), Authority::kCoordination}}};
  Keyring ring = Keyring::load(dir.path(), configured);
  EXPECT_EQ(ring.authority_of("ops"), Authority::kCoordination);
  EXPECT_EQ(ring.authority_of("qa"), Authority::kReadOnly);
  EXPECT_EQ(ring.own_roles().size(), 2u);
}

TEST(KeyringFiles, BadKeyFilesAreRefusedByName) {
  age::X25519Identity a = age::X25519Identity::generate(), b = age::X25519Identity::generate();
  const std::string cases[] = {
      "",                                                                           // no identity
      "# authority: master\n",                                                      // likewise
      "# authority: emperor\n" + a.to_string() + "\n",                              // unknown authority
      a.to_string() + "\n" + b.to_string() + "\n",                                  // two identities
      "# recipient: " + b.recipient().to_string() + "\n" + a.to_string() + "\n",    // wrong recipient
      "hello\n" + a.to_string() + "\n",                                             // junk line
      a.recipient().to_string() + "\n",                                             // a recipient, no identity
  };
  for (const std::string &text : cases) {
    TempDir dir;
    fs::create_directory(dir.path() / "roles");
    ::chmod((dir.path() / "roles").c_str(), 0700);
    write_text(dir.path() / "roles" / "dev.key", text, 0600);
    std::string err = keyring_error([&] { Keyring::load(dir.path()); });
    EXPECT_NE(err.find("dev.key"), std::string::npos) << "file:\n" << text << "\nerror: " << err;
    // The secret never appears in the message.
    EXPECT_EQ(err.find(a.to_string().substr(16)), std::string::npos) << err;
    EXPECT_EQ(err.find(b.to_string().substr(16)), std::string::npos) << err;
  }
}

TEST(KeyringFiles, ConfiguredRecipientMustMatchTheHeldKey) {
  TempDir dir;
  Keyring::generate_role(dir.path(), "dev", Authority::kSuggestion);
  std::map<std::string, RoleRecipient> configured = {
      {"dev", {age::X25519Identity::generate().recipient(), Authority::kSuggestion}}};
  std::string err = keyring_error([&] { Keyring::load(dir.path(), configured); });
  EXPECT_NE(err.find("dev.key"), std::string::npos) << err;
  EXPECT_NE(keyring_error([&] {
              Keyring::load(dir.path(), {{"bad/name", {age::X25519Identity::generate().recipient(), Authority::kMaster}}});
            }),
            "");
}

// Two nodes: "admin" holds the master key, "worker" holds only the dev role; a third role ("qa")
// is held by nobody here and known only from configuration.
class KeyringRolesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_key = Keyring::generate_role(admin_dir.path(), "admin", Authority::kMaster).identity.recipient();
    dev_key = Keyring::generate_role(worker_dir.path(), "dev", Authority::kSuggestion).identity.recipient();
    qa_identity = age::X25519Identity::generate();
    std::map<std::string, RoleRecipient> config = {{"admin", {admin_key, Authority::kMaster}},
                                                   {"dev", {dev_key, Authority::kSuggestion}},
                                                   {"qa", {qa_identity->recipient(), Authority::kReadOnly}}};
    admin = Keyring::load(admin_dir.path(), config);
    worker = Keyring::load(worker_dir.path(), config);
  }

  TempDir admin_dir, worker_dir;
  age::X25519Recipient admin_key, dev_key;
  std::optional<age::X25519Identity> qa_identity;
  Keyring admin, worker;
};

TEST_F(KeyringRolesTest, CanDecrypt) {
  EXPECT_TRUE(admin.holds_master());
  EXPECT_TRUE(admin.can_decrypt("dev"));
  EXPECT_TRUE(admin.can_decrypt("qa"));
  EXPECT_TRUE(admin.can_decrypt("never-heard-of"));
  EXPECT_FALSE(worker.holds_master());
  EXPECT_TRUE(worker.can_decrypt("dev"));
  EXPECT_FALSE(worker.can_decrypt("qa"));
  EXPECT_FALSE(worker.can_decrypt("admin"));
  EXPECT_TRUE(worker.knows("qa"));
  EXPECT_FALSE(worker.knows("never-heard-of"));
  EXPECT_EQ(worker.authority_of("admin"), Authority::kMaster);
  EXPECT_EQ(worker.authority_of("never-heard-of"), std::nullopt);
}

TEST_F(KeyringRolesTest, RecipientsAlwaysIncludeTheMasters) {
  std::vector<age::X25519Recipient> dev = worker.recipients_for("dev");
  ASSERT_EQ(dev.size(), 2u);
  EXPECT_EQ(dev[0], dev_key);
  EXPECT_EQ(dev[1], admin_key);
  std::vector<age::X25519Recipient> qa = admin.recipients_for("qa");
  ASSERT_EQ(qa.size(), 2u);
  EXPECT_EQ(qa[0], qa_identity->recipient());
  EXPECT_EQ(qa[1], admin_key);
  // The master's own role: one recipient, not two copies of it.
  EXPECT_EQ(admin.recipients_for("admin"), std::vector<age::X25519Recipient>{admin_key});
  std::string err = keyring_error([&] { worker.recipients_for("never-heard-of"); });
  EXPECT_NE(err.find("never-heard-of"), std::string::npos) << err;
}

TEST_F(KeyringRolesTest, AdminDecryptsEverythingOthersOnlyTheirRole) {
  Bytes plaintext = bytes_of("the plan");
  Bytes for_dev = worker.encrypt_for("dev", plaintext);
  Bytes for_qa = worker.encrypt_for("qa", plaintext);
  EXPECT_EQ(worker.decrypt_for("dev", for_dev), plaintext);
  EXPECT_EQ(admin.decrypt_for("dev", for_dev), plaintext);
  EXPECT_EQ(admin.decrypt_for("qa", for_qa), plaintext);
  EXPECT_EQ(age::decrypt(for_qa, std::vector<age::X25519Identity>{*qa_identity}), plaintext);

  try {
    worker.decrypt_for("qa", for_qa);
    ADD_FAILURE() << "the worker decrypted qa content";
  } catch (const NotAuthorisedError &e) {
    EXPECT_STREQ(e.what(), "not authorised: no key for role 'qa'");
    EXPECT_EQ(e.role(), "qa");
  }
}

TEST_F(KeyringRolesTest, HeldRoleButForeignContentIsNotAuthorised) {
  // Content labelled "dev" but encrypted to keys this node does not hold: no garbage, a refusal.
  std::vector<age::X25519Recipient> elsewhere = {age::X25519Identity::generate().recipient()};
  Bytes foreign = age::encrypt(bytes_of("x"), elsewhere);
  EXPECT_THROW(worker.decrypt_for("dev", foreign), NotAuthorisedError);
  EXPECT_THROW(admin.decrypt_for("dev", foreign), NotAuthorisedError);
  // A tampered file for a role we hold is a format error, not an authorisation one.
  Bytes tampered = worker.encrypt_for("dev", bytes_of("y"));
  tampered.back() ^= 1;
  try {
    worker.decrypt_for("dev", tampered);
    ADD_FAILURE() << "tampered content decrypted";
  } catch (const age::AgeError &e) {
    EXPECT_EQ(e.code(), age::Errc::kPayloadAuthFailed);
  }
}

TEST_F(KeyringRolesTest, IdentitiesListMastersFirst) {
  Keyring::generate_role(admin_dir.path(), "backup", Authority::kReadOnly);
  Keyring ring = Keyring::load(admin_dir.path());
  std::vector<age::X25519Identity> ids = ring.identities();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].recipient(), admin_key);
  EXPECT_TRUE(worker.identities().size() == 1 && worker.identities()[0].recipient() == dev_key);
}

}  // namespace
}  // namespace chorus::dht
