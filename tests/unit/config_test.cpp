// Tests of the YAML config module. Error messages are user-facing, so they are compared exactly.
#include "config.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace chorus::host {
namespace {

// A fake environment. EnvLookup is a plain function pointer, so the variables live in a global that
// the ConfigEnv fixture clears around each test.
std::map<std::string, std::string> g_env;

std::optional<std::string> fake_env(const char *name) {
  auto it = g_env.find(name);
  if (it == g_env.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> no_env(const char *) { return std::nullopt; }

Config parse(const std::string &yaml, EnvLookup env = no_env) { return parse_config(yaml, "test.yaml", env); }

// The ConfigError message for `yaml`, or "<no error>".
std::string error_of(const std::string &yaml, EnvLookup env = no_env) {
  try {
    parse(yaml, env);
  } catch (const ConfigError &e) {
    return e.what();
  }
  return "<no error>";
}

// The config JSON of the only plugin "x" whose `config:` is given in YAML.
std::string plugin_json(const std::string &config_yaml) {
  Config c = parse("plugins:\n  x:\n    config:\n" + config_yaml);
  return c.plugins.at(0).config_json;
}

std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "chorus-config-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string &name, const std::string &text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------------

TEST(ConfigParse, EmptyDocumentsGiveDefaults) {
  Config expected;
  expected.source = "test.yaml";
  for (const char *text : {"", "\n", "# only a comment\n", "---\n", "agent:\nhost:\nplugins:\nbindings:\n",
                           "agent: {}\nhost: {http: {}}\nplugins: {}\nbindings: {}\n"}) {
    EXPECT_EQ(parse(text), expected) << text;
  }
  Config c = parse("");
  EXPECT_EQ(c.agent.cluster_id, "chorus-dev");
  EXPECT_EQ(c.host.log_level, "info");
  EXPECT_EQ(c.host.log_format, "text");
  EXPECT_EQ(c.host.http_listen, "127.0.0.1:8081");
  EXPECT_EQ(c.host.shutdown_timeout_ms, 30000u);
  EXPECT_EQ(c.host.start_timeout_ms, 30000u);
  EXPECT_EQ(c.host.swap_drain_timeout_ms, 60000u);
  EXPECT_EQ(c.host.worker_threads, 0u);
  EXPECT_FALSE(c.host.strict);
  EXPECT_TRUE(c.plugins.empty());
  EXPECT_TRUE(c.bindings.empty());
  EXPECT_EQ(c.source, "test.yaml");
}

TEST(ConfigParse, EveryKey) {
  Config c = parse(R"(
agent: { id: agent-7, role: backend_developer, cluster_id: prod }
host:
  log_level: debug
  log_format: json
  plugin_dirs: [/opt/chorus/plugins, "/srv/more plugins"]
  state_dir: /var/tmp/chorus
  http: { listen: "0.0.0.0:9090" }
  shutdown_timeout_ms: 5000
  start_timeout_ms: 0
  swap_drain_timeout_ms: 4294967295
  worker_threads: 8
  strict: true
plugins:
  p2p: { enabled: false, critical: true, path: /opt/p2p.so, sha256: "", config: { a: 1 } }
bindings:
  chorus.p2p.host: p2p
)");
  EXPECT_EQ(c.agent.id, "agent-7");
  EXPECT_EQ(c.agent.role, "backend_developer");
  EXPECT_EQ(c.agent.cluster_id, "prod");
  EXPECT_EQ(c.host.log_level, "debug");
  EXPECT_EQ(c.host.log_format, "json");
  EXPECT_EQ(c.host.plugin_dirs, (std::vector<std::string>{"/opt/chorus/plugins", "/srv/more plugins"}));
  EXPECT_EQ(c.host.state_dir, "/var/tmp/chorus");
  EXPECT_EQ(c.host.http_listen, "0.0.0.0:9090");
  EXPECT_EQ(c.host.shutdown_timeout_ms, 5000u);
  EXPECT_EQ(c.host.start_timeout_ms, 0u);
  EXPECT_EQ(c.host.swap_drain_timeout_ms, 4294967295u);
  EXPECT_EQ(c.host.worker_threads, 8u);
  EXPECT_TRUE(c.host.strict);
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].id, "p2p");
  EXPECT_FALSE(c.plugins[0].enabled);
  EXPECT_TRUE(c.plugins[0].critical);
  EXPECT_EQ(c.plugins[0].path, "/opt/p2p.so");
  EXPECT_EQ(c.plugins[0].sha256, "");
  EXPECT_EQ(c.plugins[0].config_json, R"({"a":1})");
  EXPECT_EQ(c.bindings, (std::map<std::string, std::string>{{"chorus.p2p.host", "p2p"}}));
}

TEST(ConfigParse, ContractExample) {
  const std::string pin(64, 'a');
  Config c = parse(R"(
plugins:
  p2p:      { enabled: true,  critical: true,  config: { listen: [/ip4/0.0.0.0/tcp/9000] } }
  mdns:     { enabled: true,  critical: false, config: { service_tag: CHORUS-peer-discovery } }
  backbeat: { enabled: false, critical: false, config: { nats_url: "nats://127.0.0.1:4222" } }
  ai-ollama: { enabled: true, config: { endpoint: "http://localhost:11434" } }
  acme.audit-log: { enabled: true, path: /opt/acme/chorus-acme.audit-log.so, sha256: ")" + pin + R"(", config: {} }
bindings:
  chorus.ai.provider: ai-ollama
)");
  ASSERT_EQ(c.plugins.size(), 5u);
  // File order is kept (it is the order users read), not sorted.
  EXPECT_EQ(c.plugins[0].id, "p2p");
  EXPECT_EQ(c.plugins[1].id, "mdns");
  EXPECT_EQ(c.plugins[2].id, "backbeat");
  EXPECT_EQ(c.plugins[3].id, "ai-ollama");
  EXPECT_EQ(c.plugins[4].id, "acme.audit-log");
  EXPECT_EQ(c.plugins[0].config_json, R"({"listen":["/ip4/0.0.0.0/tcp/9000"]})");
  EXPECT_EQ(c.plugins[1].config_json, R"({"service_tag":"CHORUS-peer-discovery"})");
  EXPECT_FALSE(c.plugins[2].enabled);
  EXPECT_EQ(c.plugins[3].config_json, R"({"endpoint":"http://localhost:11434"})");
  EXPECT_FALSE(c.plugins[3].critical);
  EXPECT_EQ(c.plugins[4].path, "/opt/acme/chorus-acme.audit-log.so");
  EXPECT_EQ(c.plugins[4].sha256, pin);
  EXPECT_EQ(c.plugins[4].config_json, "{}");
  EXPECT_EQ(c.bindings.at("chorus.ai.provider"), "ai-ollama");
}

TEST(ConfigParse, NullValuesKeepDefaults) {
  Config c = parse("agent:\n  cluster_id:\nhost:\n  log_level: ~\n  strict: null\n  worker_threads:\n"
                   "  plugin_dirs:\n  http:\n    listen:\n");
  Config expected;
  expected.source = "test.yaml";
  EXPECT_EQ(c, expected);
}

TEST(ConfigParse, EmptyListenDisablesHttp) {
  EXPECT_EQ(parse("host: { http: { listen: \"\" } }").host.http_listen, "");
}

TEST(ConfigParse, ListenForms) {
  for (const char *ok : {"127.0.0.1:8081", "0.0.0.0:0", "10.1.2.3:65535", "[::1]:8081", "[::]:80", "[fe80::1]:1"}) {
    EXPECT_EQ(parse(std::string("host: { http: { listen: \"") + ok + "\" } }").host.http_listen, ok);
  }
  for (const char *bad : {"localhost:8081", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:8081", "[::1]8081",
                          "[::1]", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3:80", ":8081", "[127.0.0.1]:80",
                          "1.2.3.4:000080"}) {
    EXPECT_EQ(error_of(std::string("host: { http: { listen: \"") + bad + "\" } }"),
              std::string("host.http.listen: expected \"<ipv4>:<port>\", \"[<ipv6>]:<port>\" or \"\" (disabled), got '") +
                  bad + "'")
        << bad;
  }
}

TEST(ConfigParse, BooleansAreTrueOrFalse) {
  for (const char *t : {"true", "True", "TRUE"}) EXPECT_TRUE(parse(std::string("host: {strict: ") + t + "}").host.strict);
  for (const char *f : {"false", "False", "FALSE"}) {
    EXPECT_FALSE(parse(std::string("host: {strict: ") + f + "}").host.strict);
  }
  // YAML 1.1 spellings are not booleans here (YAML 1.2 agrees): an error, never a silent guess.
  for (const char *no : {"yes", "no", "on", "off", "y", "1"}) {
    EXPECT_EQ(error_of(std::string("host: {strict: ") + no + "}"),
              std::string("host.strict: expected a boolean, got '") + no + "'");
  }
}

TEST(ConfigParse, PluginEntryDefaults) {
  Config c = parse("plugins:\n  mdns:\n  gossip: {}\n");
  ASSERT_EQ(c.plugins.size(), 2u);
  for (const PluginEntry &p : c.plugins) {
    EXPECT_TRUE(p.enabled);
    EXPECT_FALSE(p.critical);
    EXPECT_EQ(p.path, "");
    EXPECT_EQ(p.sha256, "");
    EXPECT_EQ(p.config_json, "{}");
  }
  EXPECT_EQ(c.plugins[0].id, "mdns");
  EXPECT_EQ(c.plugins[1].id, "gossip");
}

TEST(ConfigParse, PluginIds) {
  const std::string longest = "a" + std::string(63, 'z');
  for (const std::string &id : {std::string("p2p"), std::string("acme.audit-log"), std::string("a_b"),
                                std::string("0x"), std::string("9"), longest}) {
    EXPECT_EQ(parse("plugins:\n  " + id + ": {}\n").plugins.at(0).id, id);
  }
  const std::string rule =
      " (expected 1-64 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit)";
  for (const std::string &id : {std::string("P2P"), std::string("-x"), std::string(".x"), std::string("a b"),
                                std::string("a/b"), std::string("\"\""), longest + "z"}) {
    const std::string key = id == "\"\"" ? "" : id;
    const std::string shown = key.size() > 60 ? key.substr(0, 60) + "..." : key;  // long values are cut
    EXPECT_EQ(error_of("plugins:\n  " + id + ": {}\n"), "plugins." + key + ": invalid plugin id '" + shown + "'" + rule)
        << id;
  }
}

TEST(ConfigParse, Sha256IsLowerCased) {
  const std::string upper = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";
  std::string lower = upper;
  for (char &ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_EQ(parse("plugins: { x: { sha256: " + upper + " } }").plugins[0].sha256, lower);
  EXPECT_EQ(error_of("plugins: { x: { sha256: abc } }"), "plugins.x.sha256: expected 64 hexadecimal digits, got 'abc'");
  EXPECT_EQ(error_of("plugins: { x: { sha256: " + std::string(63, 'g') + "f } }"),
            "plugins.x.sha256: expected 64 hexadecimal digits, got '" + std::string(60, 'g') + "...'");
  EXPECT_EQ(error_of("plugins: { x: { sha256: " + upper + "0 } }"),
            "plugins.x.sha256: expected 64 hexadecimal digits, got '" + upper.substr(0, 60) + "...'");
}

TEST(ConfigParse, Bindings) {
  Config c = parse("bindings:\n  chorus.ai.provider: ai-ollama\n  chorus.pubsub: gossip\n");
  EXPECT_EQ(c.bindings, (std::map<std::string, std::string>{{"chorus.ai.provider", "ai-ollama"},
                                                            {"chorus.pubsub", "gossip"}}));
}

TEST(ConfigParse, FindPlugin) {
  Config c = parse("plugins: { a: {critical: true}, b: {} }");
  ASSERT_NE(c.find_plugin("a"), nullptr);
  EXPECT_TRUE(c.find_plugin("a")->critical);
  EXPECT_EQ(c.find_plugin("b")->id, "b");
  EXPECT_EQ(c.find_plugin("c"), nullptr);
}

// ---------------------------------------------------------------------------------------------------

TEST(ConfigErrors, UnknownKeys) {
  EXPECT_EQ(error_of("hots: {}"), "hots: unknown key (expected one of: agent, host, plugins, bindings)");
  EXPECT_EQ(error_of("agent: { name: x }"), "agent.name: unknown key (expected one of: id, role, cluster_id, assignment_file, assignment_url)");
  EXPECT_EQ(error_of("host:\n  htp: {}\n"),
            "host.htp: unknown key (expected one of: log_level, log_format, plugin_dirs, state_dir, http, "
            "shutdown_timeout_ms, start_timeout_ms, swap_drain_timeout_ms, worker_threads, strict, shhh)");
  EXPECT_EQ(error_of("host: { http: { port: 1 } }"), "host.http.port: unknown key (expected one of: listen)");
  EXPECT_EQ(error_of("plugins: { p2p: { enable: true } }"),
            "plugins.p2p.enable: unknown key (expected one of: enabled, critical, path, sha256, config)");
  // Inside a plugin's own config anything goes: the plugin's schema judges it.
  EXPECT_EQ(plugin_json("      whatever: 1\n"), R"({"whatever":1})");
}

TEST(ConfigShhh, DefaultsAndEveryKey) {
  const ShhhConfig defaults = parse("{}").host.shhh;
  EXPECT_TRUE(defaults.enabled && defaults.logs && defaults.pubsub && defaults.ucxi && defaults.builtin_rules);
  EXPECT_EQ(defaults.audit_file, "");
  EXPECT_TRUE(defaults.rules.empty());
  const ShhhConfig c = parse(R"(host:
  shhh:
    enabled: true
    channels: { logs: true, pubsub: false, ucxi: false }
    audit_file: "off"
    builtin_rules: false
    rules:
      - { name: internal.ticket, pattern: "TICKET-[0-9]{6}", severity: low, tags: [internal, ticket] }
      - name: db-password
        pattern: 'dbpass=(\S+)'
)").host.shhh;
  EXPECT_FALSE(c.pubsub);
  EXPECT_FALSE(c.ucxi);
  EXPECT_TRUE(c.logs);
  EXPECT_EQ(c.audit_file, "off");
  EXPECT_FALSE(c.builtin_rules);
  ASSERT_EQ(c.rules.size(), 2u);
  EXPECT_EQ(c.rules[0], (ShhhRuleConfig{"internal.ticket", "TICKET-[0-9]{6}", "low", {"internal", "ticket"}}));
  EXPECT_EQ(c.rules[1].severity, "high");
  EXPECT_EQ(c.rules[1].pattern, "dbpass=(\\S+)");
  // CHORUS_SHHH_ENABLED overrides the file.
  auto off = [](const char *name) -> std::optional<std::string> {
    return std::string(name) == "CHORUS_SHHH_ENABLED" ? std::optional<std::string>("false") : std::nullopt;
  };
  EXPECT_FALSE(parse("{}", off).host.shhh.enabled);
  auto bad = [](const char *name) -> std::optional<std::string> {
    return std::string(name) == "CHORUS_SHHH_ENABLED" ? std::optional<std::string>("maybe") : std::nullopt;
  };
  EXPECT_EQ(error_of("{}", bad), "CHORUS_SHHH_ENABLED: expected true or false, got 'maybe'");
}

TEST(ConfigShhh, ErrorsNameTheKey) {
  EXPECT_EQ(error_of("host: { shhh: { enable: true } }"),
            "host.shhh.enable: unknown key (expected one of: enabled, channels, audit_file, builtin_rules, rules)");
  EXPECT_EQ(error_of("host: { shhh: { channels: { log: true } } }"),
            "host.shhh.channels.log: unknown key (expected one of: logs, pubsub, ucxi)");
  EXPECT_EQ(error_of("host: { shhh: { rules: [ { name: a, pattern: x, severity: severe } ] } }"),
            "host.shhh.rules[0].severity: expected one of low|medium|high|critical, got 'severe'");
  EXPECT_EQ(error_of("host: { shhh: { rules: [ { name: A, pattern: x } ] } }"),
            "host.shhh.rules[0].name: expected a rule name of 1 to 64 characters from [a-z0-9_.-], got 'A'");
  EXPECT_EQ(error_of("host: { shhh: { rules: [ { name: a, pattern: x }, { name: a, pattern: y } ] } }"),
            "host.shhh.rules[1].name: duplicate rule name 'a'");
  EXPECT_EQ(error_of("host: { shhh: { rules: [ { name: a } ] } }"), "host.shhh.rules[0].pattern: expected an RE2 pattern, got ''");
  EXPECT_EQ(error_of("host: { shhh: { rules: [ { name: a, pattern: x, colour: red } ] } }"),
            "host.shhh.rules[0].colour: unknown key (expected one of: name, pattern, severity, tags)");
  const std::string bad_pattern = error_of("host: { shhh: { rules: [ { name: broken, pattern: \"(unclosed\" } ] } }");
  EXPECT_EQ(bad_pattern.rfind("host.shhh.rules: rule 'broken': ", 0), 0u) << bad_pattern;
  EXPECT_EQ(error_of("host: { shhh: { rules: {} } }"), "host.shhh.rules: expected a list of rules, got a map");
  EXPECT_EQ(error_of("host: { shhh: { rules: [ { name: bearer_token, pattern: x } ] } }"),
            "host.shhh.rules: rule 'bearer_token': the name is already taken");
  EXPECT_EQ(error_of("host: { shhh: { builtin_rules: false, rules: [ { name: bearer_token, pattern: x } ] } }"),
            "<no error>");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of("plugins:\n  p2p:\n    critical: yes please\n"),
            "plugins.p2p.critical: expected a boolean, got 'yes please'");
  EXPECT_EQ(error_of("plugins: { p2p: { enabled: \"true\" } }"),
            "plugins.p2p.enabled: expected a boolean, got the quoted string 'true'");
  EXPECT_EQ(error_of("host: { strict: [true] }"), "host.strict: expected a boolean, got a list");
  EXPECT_EQ(error_of("host: { strict: {a: 1} }"), "host.strict: expected a boolean, got a map");
  EXPECT_EQ(error_of("agent: { id: [a] }"), "agent.id: expected a string, got a list");
  EXPECT_EQ(error_of("plugins: { p2p: { path: {a: b} } }"), "plugins.p2p.path: expected a string, got a map");
  EXPECT_EQ(error_of("host: 5"), "host: expected a map, got '5'");
  EXPECT_EQ(error_of("agent: [a]"), "agent: expected a map, got a list");
  EXPECT_EQ(error_of("host: { http: on }"), "host.http: expected a map, got 'on'");
  EXPECT_EQ(error_of("plugins: { p2p: true }"), "plugins.p2p: expected a map, got 'true'");
  EXPECT_EQ(error_of("plugins: [p2p]"), "plugins: expected a map of plugin id to settings, got a list");
  EXPECT_EQ(error_of("bindings: [a]"), "bindings: expected a map of service to plugin id, got a list");
  EXPECT_EQ(error_of("plugins: { p2p: { config: [1] } }"), "plugins.p2p.config: expected a map, got a list");
  EXPECT_EQ(error_of("plugins: { p2p: { config: text } }"), "plugins.p2p.config: expected a map, got 'text'");
  // A scalar tag that is not a plain string would need its own meaning; refused rather than guessed.
  EXPECT_EQ(error_of("agent: { id: !!int 5 }"), "agent.id: unsupported YAML tag '!!int' (only !!str is accepted)");
  EXPECT_EQ(error_of("agent: { id: !custom 5 }"), "agent.id: unsupported YAML tag '!custom' (only !!str is accepted)");
  EXPECT_EQ(parse("agent: { id: !!str 5 }").agent.id, "5");
}

TEST(ConfigErrors, TopLevelMustBeAMap) {
  EXPECT_EQ(error_of("hello"), "top level: expected a map, got 'hello'");
  EXPECT_EQ(error_of("- a\n- b\n"), "top level: expected a map, got a list");
}

TEST(ConfigErrors, Integers) {
  EXPECT_EQ(parse("host: { worker_threads: 1024 }").host.worker_threads, 1024u);
  EXPECT_EQ(parse("host: { worker_threads: +3 }").host.worker_threads, 3u);
  EXPECT_EQ(parse("host: { shutdown_timeout_ms: 007 }").host.shutdown_timeout_ms, 7u);
  EXPECT_EQ(error_of("host: { worker_threads: 1025 }"),
            "host.worker_threads: expected an integer from 0 to 1024, got '1025'");
  EXPECT_EQ(error_of("host: { worker_threads: -1 }"), "host.worker_threads: expected an integer from 0 to 1024, got '-1'");
  for (const char *bad : {"-5", "1.5", "0x10", "1_000", "1e3", "ten", "4294967296", "99999999999999999999999"}) {
    EXPECT_EQ(error_of(std::string("host: { shutdown_timeout_ms: ") + bad + " }"),
              std::string("host.shutdown_timeout_ms: expected an integer from 0 to 4294967295, got '") + bad + "'")
        << bad;
  }
  EXPECT_EQ(error_of("host: { start_timeout_ms: \"5\" }"),
            "host.start_timeout_ms: expected an integer from 0 to 4294967295, got the quoted string '5'");
  EXPECT_EQ(error_of("host: { swap_drain_timeout_ms: [] }"),
            "host.swap_drain_timeout_ms: expected an integer from 0 to 4294967295, got a list");
}

TEST(ConfigErrors, Choices) {
  EXPECT_EQ(error_of("host: { log_level: verbose }"),
            "host.log_level: expected one of trace|debug|info|warn|error, got 'verbose'");
  EXPECT_EQ(error_of("host: { log_level: INFO }"), "host.log_level: expected one of trace|debug|info|warn|error, got 'INFO'");
  EXPECT_EQ(error_of("host: { log_format: xml }"), "host.log_format: expected one of text|json, got 'xml'");
  EXPECT_EQ(error_of("host: { log_format: [] }"), "host.log_format: expected a string, got a list");
  for (const char *level : {"trace", "debug", "info", "warn", "error"}) {
    EXPECT_EQ(parse(std::string("host: { log_level: ") + level + " }").host.log_level, level);
  }
}

TEST(ConfigErrors, DuplicateKeys) {
  EXPECT_EQ(error_of("host: {}\nhost: {}\n"), "host: duplicate key (lines 1 and 2)");
  EXPECT_EQ(error_of("host:\n  log_level: info\n  strict: true\n  log_level: debug\n"),
            "host.log_level: duplicate key (lines 2 and 4)");
  EXPECT_EQ(error_of("plugins:\n  p2p: {}\n  p2p: {}\n"), "plugins.p2p: duplicate key (lines 2 and 3)");
  EXPECT_EQ(error_of("plugins:\n  p2p:\n    config: { a: 1, a: 2 }\n"),
            "plugins.p2p.config.a: duplicate key (lines 3 and 3)");
  EXPECT_EQ(error_of("plugins:\n  p2p:\n    config:\n      x:\n        - { k: 1 }\n        - { k: 1, k: 2 }\n"),
            "plugins.p2p.config.x[1].k: duplicate key (lines 6 and 6)");
  EXPECT_EQ(error_of("bindings:\n  chorus.pubsub: a\n  chorus.pubsub: b\n"),
            "bindings.chorus.pubsub: duplicate key (lines 2 and 3)");
}

TEST(ConfigErrors, NonStringKeys) {
  EXPECT_EQ(error_of("host:\n  ? [a]\n  : 1\n"), "host: a map key must be a string, got a list");
}

TEST(ConfigErrors, SyntaxErrorsCarryLineAndColumn) {
  EXPECT_EQ(error_of("plugins: [1, 2\nbindings: 3\n"), "test.yaml:2:9: end of sequence flow not found");
  EXPECT_EQ(error_of("host: log_level: info\n"), "test.yaml:1:16: illegal map value");
  EXPECT_EQ(error_of("host:\n\tstrict: true\n"), "test.yaml:2:8: illegal map value");
}

TEST(ConfigErrors, OneDocumentOnly) {
  EXPECT_EQ(error_of("host: {}\n---\nagent: {}\n"), "test.yaml: expected one YAML document, found more (a '---' separator, or text after the first document)");
}

TEST(ConfigErrors, PluginDirs) {
  EXPECT_EQ(error_of("host: { plugin_dirs: /opt }"), "host.plugin_dirs: expected a list of directories, got '/opt'");
  EXPECT_EQ(error_of("host: { plugin_dirs: [/a, [b]] }"), "host.plugin_dirs[1]: expected a directory path, got a list");
  EXPECT_EQ(error_of("host: { plugin_dirs: [/a, ~] }"), "host.plugin_dirs[1]: expected a directory path, got null");
  EXPECT_EQ(error_of("host: { plugin_dirs: [\"\"] }"), "host.plugin_dirs[0]: expected a directory path, got ''");
}

TEST(ConfigErrors, Bindings) {
  EXPECT_EQ(error_of("bindings: { chorus.ai.provider: Ollama }"),
            "bindings.chorus.ai.provider: invalid plugin id 'Ollama' (expected 1-64 characters from a-z, 0-9, '.', "
            "'_', '-', starting with a letter or digit)");
  EXPECT_EQ(error_of("bindings: { chorus.ai.provider: }"), "bindings.chorus.ai.provider: expected a plugin id, got null");
  EXPECT_EQ(error_of("bindings: { chorus.ai.provider: [a, b] }"),
            "bindings.chorus.ai.provider: expected a plugin id, got a list");
  EXPECT_EQ(error_of("bindings: { \"\": a }"), "bindings: a service name must not be empty");
}

// ---------------------------------------------------------------------------------------------------

TEST(ConfigPluginJson, ScalarTyping) {
  EXPECT_EQ(plugin_json(R"(      quoted: ["1", 'true', "~", "null", "1.5"]
      nulls: [~, null, Null, NULL, ]
      bools: [true, True, TRUE, false, False, FALSE]
      ints: [0, 42, -7, +3, 007, 9223372036854775807, 18446744073709551615, -9223372036854775808]
      floats: [1.5, -0.25, 1e3, 2.5E-1, .5, 3.]
      text: [yes, no, on, off, 0x10, 0o17, 1_000, .inf, .nan, 1e999, 1.2.3, hello world, "", 'a''b']
      str_tag: !!str 12
)"),
            R"({"bools":[true,true,true,false,false,false],"floats":[1.5,-0.25,1000.0,0.25,0.5,3.0],)"
            R"("ints":[0,42,-7,3,7,9223372036854775807,18446744073709551615,-9223372036854775808],)"
            R"("nulls":[null,null,null,null],"quoted":["1","true","~","null","1.5"],"str_tag":"12",)"
            R"("text":["yes","no","on","off","0x10","0o17","1_000",".inf",".nan","1e999","1.2.3","hello world","","a'b"]})");
}

TEST(ConfigPluginJson, IntegerBeyond64BitsBecomesANumber) {
  nlohmann::json j = nlohmann::json::parse(plugin_json("      big: 99999999999999999999\n"));
  ASSERT_TRUE(j["big"].is_number_float());
  EXPECT_DOUBLE_EQ(j["big"].get<double>(), 1e20);
}

TEST(ConfigPluginJson, NestingAndBlockScalars) {
  EXPECT_EQ(plugin_json("      outer:\n        inner: { list: [a, {b: 1}], empty: {}, none: [] }\n"
                        "      literal: |\n        line1\n        line2\n      folded: >\n        a\n        b\n"),
            R"({"folded":"a b\n","literal":"line1\nline2\n","outer":{"inner":{"empty":{},"list":["a",{"b":1}],"none":[]}}})");
}

TEST(ConfigPluginJson, KeysAreStringsAndOutputIsCanonical) {
  // Keys are text whatever they look like; output keys are sorted so equal configs compare equal as text.
  EXPECT_EQ(plugin_json("      z: 1\n      1: a\n      true: b\n      a: 2\n"), R"({"1":"a","a":2,"true":"b","z":1})");
  EXPECT_EQ(error_of("plugins: { x: { config: { ? [k] : 1 } } }"), "plugins.x.config: a map key must be a string, got a list");
}

TEST(ConfigPluginJson, NullOrEmptyConfigIsAnEmptyObject) {
  EXPECT_EQ(parse("plugins: { x: { config: } }").plugins[0].config_json, "{}");
  EXPECT_EQ(parse("plugins: { x: { config: ~ } }").plugins[0].config_json, "{}");
  EXPECT_EQ(parse("plugins: { x: { config: {} } }").plugins[0].config_json, "{}");
}

TEST(ConfigPluginJson, AnchorsAndAliases) {
  Config c = parse("plugins:\n  a: { config: &shared { endpoint: \"http://h:1\", retries: 3 } }\n"
                   "  b: { config: *shared }\n");
  EXPECT_EQ(c.plugins[0].config_json, R"({"endpoint":"http://h:1","retries":3})");
  EXPECT_EQ(c.plugins[1].config_json, c.plugins[0].config_json);
}

TEST(ConfigPluginJson, Errors) {
  EXPECT_EQ(error_of("plugins: { x: { config: { k: !secret abc } } }"),
            "plugins.x.config.k: unsupported YAML tag '!secret' (only !!str is accepted)");
  // A raw 0xFF byte (not the YAML escape "\xff", which is the valid character U+00FF).
  EXPECT_EQ(error_of("plugins: { x: { config: { k: a\xff } } }"),
            "plugins.x.config: contains text that is not valid UTF-8");
}

// ---------------------------------------------------------------------------------------------------

class ConfigEnv : public ::testing::Test {
 protected:
  void SetUp() override { g_env.clear(); }
  void TearDown() override { g_env.clear(); }
  static std::string env_error(const std::string &yaml) { return error_of(yaml, fake_env); }
};

TEST_F(ConfigEnv, OverridesFile) {
  g_env = {{"CHORUS_AGENT_ID", "env-agent"},  {"CHORUS_ROLE", "qa"},         {"CHORUS_CLUSTER_ID", "c9"},
           {"CHORUS_LOG_LEVEL", "trace"},     {"CHORUS_LOG_FORMAT", "json"}, {"CHORUS_HEALTH_PORT", "9999"}};
  Config c = parse("agent: { id: file-agent, role: dev, cluster_id: c1 }\n"
                   "host: { log_level: warn, log_format: text, http: { listen: \"0.0.0.0:8081\" } }\n",
                   fake_env);
  EXPECT_EQ(c.agent.id, "env-agent");
  EXPECT_EQ(c.agent.role, "qa");
  EXPECT_EQ(c.agent.cluster_id, "c9");
  EXPECT_EQ(c.host.log_level, "trace");
  EXPECT_EQ(c.host.log_format, "json");
  EXPECT_EQ(c.host.http_listen, "0.0.0.0:9999");
}

TEST_F(ConfigEnv, AssignmentSourceFromFileAndDeploymentVariables) {
  Config c = parse("agent: { assignment_file: /etc/chorus/assignment.json, assignment_url: \"http://w/a\" }\n", fake_env);
  EXPECT_EQ(c.agent.assignment_file, "/etc/chorus/assignment.json");
  EXPECT_EQ(c.agent.assignment_url, "http://w/a");
  g_env = {{"ASSIGN_URL", "http://whoosh/assign"}, {"TASK_SLOT", "2"}, {"TASK_ID", "t-9"}};
  c = parse("agent: { assignment_url: \"http://w/a\" }\n", fake_env);
  EXPECT_EQ(c.agent.assignment_url, "http://whoosh/assign");
  EXPECT_EQ(c.agent.task_slot, "2");
  EXPECT_EQ(c.agent.task_id, "t-9");
}

TEST_F(ConfigEnv, UnsetOrEmptyVariablesLeaveTheFileAlone) {
  g_env = {{"CHORUS_ROLE", ""}, {"CHORUS_HEALTH_PORT", ""}, {"CHORUS_LOG_LEVEL", ""}};
  Config c = parse("agent: { role: dev }\nhost: { log_level: warn }\n", fake_env);
  EXPECT_EQ(c.agent.role, "dev");
  EXPECT_EQ(c.host.log_level, "warn");
  EXPECT_EQ(c.host.http_listen, "127.0.0.1:8081");
}

TEST_F(ConfigEnv, StateDirIsNotAppliedHere) {
  g_env = {{"CHORUS_STATE_DIR", "/tmp/x"}};
  EXPECT_EQ(parse("", fake_env).host.state_dir, "");
}

TEST_F(ConfigEnv, HealthPortReplacesOnlyThePort) {
  g_env = {{"CHORUS_HEALTH_PORT", "0"}};
  EXPECT_EQ(parse("", fake_env).host.http_listen, "127.0.0.1:0");
  EXPECT_EQ(parse("host: { http: { listen: \"[::1]:8081\" } }", fake_env).host.http_listen, "[::1]:0");
  EXPECT_EQ(parse("host: { http: { listen: \"10.0.0.5:1\" } }", fake_env).host.http_listen, "10.0.0.5:0");
  // Setting the variable asks for a health port, so a disabled listener comes up on loopback.
  EXPECT_EQ(parse("host: { http: { listen: \"\" } }", fake_env).host.http_listen, "127.0.0.1:0");
  g_env = {{"CHORUS_HEALTH_PORT", "65535"}};
  EXPECT_EQ(parse("", fake_env).host.http_listen, "127.0.0.1:65535");
}

TEST_F(ConfigEnv, BadValuesNameTheVariable) {
  for (const char *bad : {"65536", "-1", "+80", "http", "80 ", "0x50", "000080"}) {
    g_env = {{"CHORUS_HEALTH_PORT", bad}};
    EXPECT_EQ(env_error(""), std::string("CHORUS_HEALTH_PORT: expected a port number from 0 to 65535, got '") + bad + "'");
  }
  g_env = {{"CHORUS_LOG_LEVEL", "loud"}};
  EXPECT_EQ(env_error(""), "CHORUS_LOG_LEVEL: expected one of trace|debug|info|warn|error, got 'loud'");
  g_env = {{"CHORUS_LOG_FORMAT", "yaml"}};
  EXPECT_EQ(env_error(""), "CHORUS_LOG_FORMAT: expected one of text|json, got 'yaml'");
}

TEST_F(ConfigEnv, FileErrorsComeBeforeEnvErrors) {
  g_env = {{"CHORUS_LOG_LEVEL", "loud"}};
  EXPECT_EQ(env_error("host: { strict: maybe }"), "host.strict: expected a boolean, got 'maybe'");
}

TEST_F(ConfigEnv, ProcessEnvReadsTheRealEnvironment) {
  ::setenv("CHORUS_CONFIG_TEST_VARIABLE", "v", 1);
  EXPECT_EQ(process_env("CHORUS_CONFIG_TEST_VARIABLE"), "v");
  ::unsetenv("CHORUS_CONFIG_TEST_VARIABLE");
  EXPECT_EQ(process_env("CHORUS_CONFIG_TEST_VARIABLE"), std::nullopt);
}

// ---------------------------------------------------------------------------------------------------

TEST(ConfigFile, LoadsAndRecordsTheSource) {
  TempDir dir;
  const std::string path = dir.file("agent.yaml", "agent: { role: ops }\n");
  Config c = load_config_file(path, no_env);
  EXPECT_EQ(c.agent.role, "ops");
  EXPECT_EQ(c.source, path);
}

TEST(ConfigFile, SyntaxErrorsNameTheFile) {
  TempDir dir;
  const std::string path = dir.file("bad.yaml", "host:\n  strict: [\n");
  try {
    load_config_file(path, no_env);
    FAIL() << "no error";
  } catch (const ConfigError &e) {
    EXPECT_EQ(std::string(e.what()), path + ":3:1: end of sequence flow not found");
  }
}

TEST(ConfigFile, UnreadableFilesAreErrors) {
  try {
    load_config_file("/x.yaml", no_env);
    FAIL() << "no error";
  } catch (const ConfigError &e) {
    EXPECT_STREQ(e.what(), "cannot read config file '/x.yaml': No such file or directory");
  }
  TempDir dir;
  try {
    load_config_file(dir.path(), no_env);
    FAIL() << "no error";
  } catch (const ConfigError &e) {
    EXPECT_EQ(std::string(e.what()), "cannot read config file '" + dir.path() + "': Is a directory");
  }
}

TEST(ConfigFile, LocateOrder) {
  TempDir dir;
  const std::string system = dir.file("system.yaml", "");
  const std::string absent = dir.path() + "/absent.yaml";
  g_env.clear();
  // Explicit path first, even when it does not exist (loading then reports it).
  EXPECT_EQ(locate_config("/given.yaml", fake_env, system), "/given.yaml");
  g_env = {{"CHORUS_CONFIG", "/from-env.yaml"}};
  EXPECT_EQ(locate_config("/given.yaml", fake_env, system), "/given.yaml");
  EXPECT_EQ(locate_config("", fake_env, system), "/from-env.yaml");
  g_env = {{"CHORUS_CONFIG", ""}};
  EXPECT_EQ(locate_config("", fake_env, system), system);
  EXPECT_EQ(locate_config("", fake_env, absent), "");
  g_env.clear();
  EXPECT_EQ(locate_config("", no_env, system), system);
  EXPECT_EQ(locate_config("", no_env, absent), "");
}

TEST(ConfigFile, LoadConfigUsesTheLocatedFileOrTheDefault) {
  TempDir dir;
  const std::string path = dir.file("c.yaml", "host: { log_level: error }\n");
  EXPECT_EQ(load_config(path, no_env).host.log_level, "error");
  if (std::filesystem::exists(kSystemConfigPath)) GTEST_SKIP() << kSystemConfigPath << " exists on this machine";
  Config c = load_config("", no_env);
  EXPECT_EQ(c.source, kBuiltinConfigSource);
  Config expected;
  expected.source = kBuiltinConfigSource;
  EXPECT_EQ(c, expected);
}

// ---------------------------------------------------------------------------------------------------

const std::string kDefaultFile = std::string(CHORUS_SOURCE_DIR) + "/config/chorus.yaml";

// config/chorus.yaml is the shipped config (share/chorus/chorus.yaml, the Debian /etc/chorus/chorus.yaml):
// the built-in default's agent and host settings, plus the core of an agent enabled.
TEST(ConfigDefault, ShippedFileHasTheBuiltInSettingsAndEnablesTheCore) {
  Config from_file = load_config_file(kDefaultFile, no_env);
  Config built_in = parse_config(default_config_yaml(), kBuiltinConfigSource, no_env);
  std::vector<std::string> ids;
  for (const auto &p : from_file.plugins) {
    EXPECT_TRUE(p.enabled) << p.id;
    ids.push_back(p.id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"p2p", "mdns", "gossip", "dht", "election", "ucxi", "agent"}));
  ASSERT_FALSE(from_file.plugins.empty());
  EXPECT_EQ(from_file.plugins[0].config_json, R"({"listen":["/ip4/0.0.0.0/tcp/9000"]})");
  EXPECT_TRUE(from_file.bindings.empty());
  from_file.plugins.clear();
  from_file.source = built_in.source;
  EXPECT_EQ(built_in, from_file);
}

TEST(ConfigDefault, ShippedFileOptInEntriesAreValidWhenUncommented) {
  // The opt-in entries are meant to be uncommented as they are: lines "#  <key>..." lose their '#'.
  std::istringstream in(read_text(kDefaultFile));
  std::string line, text;
  while (std::getline(in, line)) {
    if (line.rfind("#  ", 0) == 0 && line.size() > 3 && line[3] != ' ') line = line.substr(1);
    text += line + "\n";
  }
  Config c = parse(text);
  std::vector<std::string> ids;
  for (const auto &p : c.plugins) {
    EXPECT_TRUE(p.enabled) << p.id;
    ids.push_back(p.id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"p2p", "mdns", "gossip", "dht", "election", "ucxi", "agent", "backbeat",
                                           "ai-ollama", "ai-openai", "reasoning", "eventlog", "license"}));
  EXPECT_EQ(c.bindings.at("chorus.ai.provider"), "ai-ollama");
}

TEST(ConfigDefault, MatchesTheCompiledDefaultsAndEnablesNoPlugin) {
  Config built_in = parse_config(default_config_yaml(), kBuiltinConfigSource, no_env);
  Config expected;
  expected.source = kBuiltinConfigSource;
  EXPECT_EQ(built_in, expected);
  EXPECT_TRUE(built_in.plugins.empty());
}

TEST(ConfigDefault, CommentedExamplesAreValidWhenUncommented) {
  // The examples are meant to be uncommented as they are: lines "#  <key>..." lose their '#'.
  std::istringstream in(default_config_yaml());
  std::string line, text;
  while (std::getline(in, line)) {
    if (line.rfind("#  ", 0) == 0 && line.size() > 3 && line[3] != ' ') line = line.substr(1);
    text += line + "\n";
  }
  Config c = parse(text);
  ASSERT_EQ(c.plugins.size(), 10u);
  EXPECT_EQ(c.plugins[0].id, "p2p");
  EXPECT_TRUE(c.plugins[0].critical);
  EXPECT_EQ(c.plugins[0].config_json, R"({"listen":["/ip4/0.0.0.0/tcp/9000"]})");
  EXPECT_EQ(c.plugins[1].config_json, R"({"service_tag":"CHORUS-peer-discovery"})");
  EXPECT_EQ(c.plugins[2].id, "gossip");
  EXPECT_TRUE(c.plugins[2].critical);
  EXPECT_EQ(c.plugins[2].config_json, R"({"signature_policy":"strict_sign"})");
  EXPECT_EQ(c.plugins[3].id, "dht");
  EXPECT_EQ(c.plugins[3].config_json, R"({"mode":"auto"})");
  EXPECT_EQ(c.plugins[4].id, "eventlog");
  EXPECT_EQ(c.plugins[4].config_json, R"({"log_peer_events":true})");
  EXPECT_FALSE(c.plugins[5].enabled);
  EXPECT_EQ(c.plugins[5].config_json, R"({"nats_url":"nats://127.0.0.1:4222"})");
  EXPECT_EQ(c.plugins[6].config_json, R"({"endpoint":"http://localhost:11434"})");
  EXPECT_EQ(c.plugins[7].id, "license");
  EXPECT_TRUE(c.plugins[7].critical);
  EXPECT_EQ(c.plugins[7].config_json, R"({"endpoint":"https://licence.example"})");
  EXPECT_EQ(c.plugins[8].id, "election");
  EXPECT_FALSE(c.plugins[8].critical);
  EXPECT_EQ(c.plugins[8].config_json, R"({"cluster_size":0})");
  EXPECT_EQ(c.plugins[9].id, "ucxi");
  EXPECT_FALSE(c.plugins[9].critical);
  EXPECT_EQ(c.plugins[9].config_json, R"({"max_body_bytes":524288})");
  EXPECT_EQ(c.bindings.at("chorus.ai.provider"), "ai-ollama");
}

}  // namespace
}  // namespace chorus::host

namespace chorus::host {
namespace {

// Inputs the fuzzer found: each must end in a ConfigError, not a hang, a stack overflow or an OOM.
TEST(ConfigErrors, TrailingTextAfterTheDocumentDoesNotHang) {
  for (const char *text : {"{},", ",", "[1],"})
    EXPECT_EQ(error_of(text), "test.yaml: expected one YAML document, found more (a '---' separator, or text after the first document)") << text;
}

TEST(ConfigErrors, RecursiveAliasInPluginConfig) {
  std::string path = "plugins.x.config";
  for (int i = 0; i < 65; ++i) path += ".k";
  EXPECT_EQ(error_of("plugins:\n  x:\n    config: &a {k: *a}\n"),
            path + ": nested deeper than 64 levels (a recursive alias?)");
}

TEST(ConfigErrors, AliasBombInPluginConfig) {
  std::string text = "plugins:\n  x:\n    config:\n      a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    text += "      a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev + ", " + prev + ", " + prev +
            ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + "]\n";
  }
  std::string message = error_of(text);
  EXPECT_NE(message.find("more than 100000 values once aliases are expanded"), std::string::npos) << message;
}

}  // namespace
}  // namespace chorus::host
