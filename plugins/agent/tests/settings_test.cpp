// The settings: the schema's defaults, the environment names (CHORUS over BZZZ), and the assignment
// facts filling in what the config leaves unset.
#include <gtest/gtest.h>

#include <chorus/testing/fake_host.hpp>

#include <map>
#include <stdexcept>
#include <string>

#include "settings.hpp"

namespace chorus::agent {
namespace {

std::string complete(std::string_view config) {
  auto p = chorus::testing::prepare_config(kConfigSchema, "agent", config);
  EXPECT_TRUE(p.ok()) << p.error;
  return p.json;
}

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char *name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Settings, DefaultsWithoutConfigAssignmentOrEnvironment) {
  const Settings s = parse_settings(complete("{}"), "{}", env_of({}));
  EXPECT_EQ(s.capabilities, (std::vector<std::string>{"general", "reasoning", "task-coordination"}));
  EXPECT_EQ(s.specialization, "general_developer");
  EXPECT_EQ(s.max_tasks, 3u);
  EXPECT_EQ(s.models, (std::vector<std::string>{"phi3", "llama3.1"}));
  EXPECT_TRUE(s.expertise.empty());
  EXPECT_EQ(s.project, "chorus");
  EXPECT_EQ(s.claim_window_ms, 1000u);
  EXPECT_EQ(s.owner_timeout_ms, 30000u);
  EXPECT_EQ(s.directory_ttl_ms, 120000u);
}

TEST(Settings, EnvironmentOverConfigOverAssignment) {
  const std::string info = R"({"capabilities":["rust"],"expertise":["compilers"],"max_tasks":5,"model":"qwen2.5"})";
  Settings s = parse_settings(complete("{}"), info, env_of({}));
  EXPECT_EQ(s.capabilities, std::vector<std::string>{"rust"});
  EXPECT_EQ(s.expertise, std::vector<std::string>{"compilers"});
  EXPECT_EQ(s.max_tasks, 5u);
  EXPECT_EQ(s.models, std::vector<std::string>{"qwen2.5"});

  s = parse_settings(complete(R"({"capabilities":["go"],"max_tasks":2})"), info, env_of({}));
  EXPECT_EQ(s.capabilities, std::vector<std::string>{"go"});
  EXPECT_EQ(s.max_tasks, 2u);

  s = parse_settings(complete(R"({"capabilities":["go"],"max_tasks":2})"), info,
                     env_of({{"CHORUS_AGENT_CAPABILITIES", "a, b ,c"},
                             {"BZZZ_AGENT_CAPABILITIES", "ignored"},
                             {"BZZZ_AGENT_MAX_TASKS", "9"},
                             {"BZZZ_AGENT_MODELS", "m1,m2"},
                             {"CHORUS_AGENT_SPECIALIZATION", "tester"},
                             {"CHORUS_AGENT_EXPERTISE", "x"}}));
  EXPECT_EQ(s.capabilities, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(s.max_tasks, 9u);
  EXPECT_EQ(s.models, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(s.specialization, "tester");
  EXPECT_EQ(s.expertise, std::vector<std::string>{"x"});
}

TEST(Settings, BadEnvironmentValuesNameTheVariable) {
  auto fails_with = [](std::map<std::string, std::string> vars, const std::string &name) {
    try {
      parse_settings(complete("{}"), "{}", env_of(std::move(vars)));
      ADD_FAILURE() << name << " accepted";
    } catch (const std::invalid_argument &e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  fails_with({{"CHORUS_AGENT_MAX_TASKS", "many"}}, "CHORUS_AGENT_MAX_TASKS");
  fails_with({{"BZZZ_AGENT_MAX_TASKS", "1001"}}, "BZZZ_AGENT_MAX_TASKS");
  fails_with({{"CHORUS_AGENT_MODELS", "a b"}}, "CHORUS_AGENT_MODELS");
}

TEST(Settings, SplitList) {
  EXPECT_EQ(split_list(""), std::vector<std::string>{});
  EXPECT_EQ(split_list(" a,,b ,"), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace chorus::agent
