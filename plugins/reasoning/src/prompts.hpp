// Role prompt composition (CHORUS's; docs/contract.md, Environment names): every *.yaml / *.yml in the prompts dir is
// merged (files in name order, later role ids overwrite), top key `roles:` -> `<role-id>:
// {name, description, tags, system_prompt, defaults{...}}`; the final prompt is the role's
// system_prompt + blank line + the default instructions file.
#pragma once

#include <map>
#include <vector>
#include <string>

namespace chorus::reasoning {

struct RolePrompt {
  std::string name, description, system_prompt;
  std::vector<std::string> models;  // defaults.models
};

struct Prompts {
  std::map<std::string, RolePrompt> roles;
  std::string default_instructions;
  std::string composed;  // for the agent's role
};

// Throws chorus::Error(CHORUS_E_CONFIG) naming the file (and line) on any problem.
Prompts load_prompts(const std::string &dir, const std::string &defaults_path, const std::string &role,
                     std::string *warning);

}  // namespace chorus::reasoning
