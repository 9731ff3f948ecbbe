// The agent's assignment (host/src/assignment.*): parsing, the request URL, and what host_info shows.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "assignment.hpp"
#include "config.hpp"

using chorus::host::AgentIdentity;
using chorus::host::Assignment;
using chorus::host::assignment_request_url;
using chorus::host::parse_assignment;

namespace {

std::string error_of(const std::string &text) {
  std::string why;
  EXPECT_FALSE(parse_assignment(text, &why)) << text;
  return why;
}

}  // namespace

TEST(Assignment, ParsesEveryKnownMemberAndIgnoresOthers) {
  std::string why;
  auto a = parse_assignment(R"({"role":"qa","model":"phi3","prompt":"Be careful.","capabilities":["code"],
                               "expertise":["go","sql"],"max_tasks":3,"bootstrap_peers":["/ip4/1.2.3.4/tcp/9000/p2p/x"],
                               "future_field":{"a":1}})",
                            &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->role, "qa");
  EXPECT_EQ(a->model, "phi3");
  EXPECT_EQ(a->prompt, "Be careful.");
  EXPECT_EQ(a->capabilities, std::vector<std::string>{"code"});
  EXPECT_EQ(a->expertise, (std::vector<std::string>{"go", "sql"}));
  EXPECT_EQ(a->max_tasks, 3u);
  EXPECT_EQ(a->bootstrap_peers, std::vector<std::string>{"/ip4/1.2.3.4/tcp/9000/p2p/x"});
}

TEST(Assignment, AbsentAndNullMembersStayUnset) {
  std::string why;
  auto a = parse_assignment(R"({"role":null})", &why);
  ASSERT_TRUE(a) << why;
  EXPECT_FALSE(a->role);
  EXPECT_FALSE(a->bootstrap_peers);
  EXPECT_EQ(chorus::host::describe(*a), "no settings");
}

TEST(Assignment, WrongShapesAreErrorsNamingTheMember) {
  EXPECT_EQ(error_of("{"), "not valid JSON");
  EXPECT_EQ(error_of("[1]"), "expected a JSON object");
  EXPECT_EQ(error_of(R"({"role":7})"), "role: expected a string");
  EXPECT_EQ(error_of(R"({"bootstrap_peers":"x"})"), "bootstrap_peers: expected an array of strings");
  EXPECT_NE(error_of(R"({"expertise":[1]})").find("expertise: every item must be a string"), std::string::npos);
  EXPECT_EQ(error_of(R"({"max_tasks":-1})"), "max_tasks: expected an integer from 0 to 10000");
  EXPECT_EQ(error_of(R"({"max_tasks":1.5})"), "max_tasks: expected an integer from 0 to 10000");
  nlohmann::json many = {{"capabilities", std::vector<std::string>(257, "c")}};
  EXPECT_EQ(error_of(many.dump()), "capabilities: more than 256 items");
  nlohmann::json long_role = {{"role", std::string(1025, 'r')}};
  EXPECT_EQ(error_of(long_role.dump()), "role: longer than 1024 bytes");
}

TEST(Assignment, RequestUrlCarriesTaskSlotAndTaskIdEncoded) {
  AgentIdentity agent;
  EXPECT_EQ(assignment_request_url(agent), "");
  agent.assignment_url = "http://whoosh:8080/api/assign";
  EXPECT_EQ(assignment_request_url(agent), "http://whoosh:8080/api/assign");
  agent.task_slot = "3";
  agent.task_id = "task 42/&";
  EXPECT_EQ(assignment_request_url(agent), "http://whoosh:8080/api/assign?task_slot=3&task_id=task%2042%2F%26");
  agent.assignment_url = "http://whoosh/assign?cluster=a";
  agent.task_slot.clear();
  EXPECT_EQ(assignment_request_url(agent), "http://whoosh/assign?cluster=a&task_id=task%2042%2F%26");
}

TEST(Assignment, UnreadableFileIsAProblemNotAnError) {
  AgentIdentity agent;
  agent.assignment_file = "/nonexistent/assignment.json";
  auto load = chorus::host::load_assignment(agent, 1000);
  EXPECT_TRUE(load.configured);
  EXPECT_FALSE(load.value);
  EXPECT_NE(load.problem.find("cannot read /nonexistent/assignment.json"), std::string::npos) << load.problem;
  EXPECT_FALSE(chorus::host::load_assignment(AgentIdentity{}, 1000).configured);
}

TEST(Assignment, HostInfoTakesTheAssignmentOverTheAgentSection) {
  AgentIdentity agent;
  agent.role = "static";
  nlohmann::json info;
  chorus::host::merge_into_host_info(std::nullopt, agent, info);
  EXPECT_EQ(info["role"], "static");
  EXPECT_EQ(info["model"], "");
  EXPECT_EQ(info["bootstrap_peers"], nlohmann::json::array());
  EXPECT_TRUE(info["max_tasks"].is_null());
  EXPECT_EQ(info["assignment"], "");

  Assignment a;
  a.role = "assigned";
  a.model = "phi3";
  a.max_tasks = 2;
  a.bootstrap_peers = std::vector<std::string>{"/ip4/1.2.3.4/tcp/1/p2p/x"};
  a.source = "url:http://w/assign";
  chorus::host::merge_into_host_info(a, agent, info);
  EXPECT_EQ(info["role"], "assigned");
  EXPECT_EQ(info["model"], "phi3");
  EXPECT_EQ(info["max_tasks"], 2);
  EXPECT_EQ(info["bootstrap_peers"][0], "/ip4/1.2.3.4/tcp/1/p2p/x");
  EXPECT_EQ(info["assignment"], "url:http://w/assign");
}
