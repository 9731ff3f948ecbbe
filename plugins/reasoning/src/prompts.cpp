#include "prompts.hpp"

#include <chorus/plugin.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace chorus::reasoning {
namespace fs = std::filesystem;

namespace {
std::string read_file(const fs::path &p, const char *what) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw chorus::Error(CHORUS_E_CONFIG, std::string(what) + " '" + p.string() + "' cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == '\n' || s[i] == '\r')) ++i;
  return s.substr(i);
}

void load_file(const fs::path &p, std::map<std::string, RolePrompt> &roles) {
  YAML::Node doc;
  try {
    doc = YAML::Load(read_file(p, "prompt file"));
  } catch (const YAML::Exception &e) {
    throw chorus::Error(CHORUS_E_CONFIG, "prompt file '" + p.string() + "': invalid YAML at line " +
                                             std::to_string(e.mark.line + 1) + ", column " +
                                             std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!doc || doc.IsNull()) return;  // an empty file
  if (!doc.IsMap()) throw chorus::Error(CHORUS_E_CONFIG, "prompt file '" + p.string() + "': top level must be a mapping with key 'roles'");
  const YAML::Node rs = doc["roles"];
  if (!rs) return;
  if (!rs.IsMap()) throw chorus::Error(CHORUS_E_CONFIG, "prompt file '" + p.string() + "': 'roles' must be a mapping");
  try {
    for (YAML::const_iterator it = rs.begin(); it != rs.end(); ++it) {
      // Copy the nodes: it->first / it->second live in a temporary proxy.
      const YAML::Node key = it->first;
      const YAML::Node r = it->second;
      const std::string id = key.as<std::string>();
      if (!r.IsMap()) throw chorus::Error(CHORUS_E_CONFIG, "prompt file '" + p.string() + "': role '" + id + "' must be a mapping");
      RolePrompt rp;
      const YAML::Node name = r["name"], description = r["description"], prompt = r["system_prompt"];
      if (name) rp.name = name.as<std::string>();
      if (description) rp.description = description.as<std::string>();
      if (prompt) rp.system_prompt = prompt.as<std::string>();
      const YAML::Node d = r["defaults"];
      if (d && d.IsMap()) {
        const YAML::Node models = d["models"];
        if (models && models.IsSequence())
          for (std::size_t i = 0; i < models.size(); ++i) rp.models.push_back(models[i].as<std::string>());
      }
      roles[id] = std::move(rp);
    }
  } catch (const YAML::Exception &e) {
    throw chorus::Error(CHORUS_E_CONFIG, "prompt file '" + p.string() + "': line " + std::to_string(e.mark.line + 1) +
                                             ": " + e.msg);
  }
}
}  // namespace

Prompts load_prompts(const std::string &dir, const std::string &defaults_path, const std::string &role,
                     std::string *warning) {
  Prompts out;
  if (!dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw chorus::Error(CHORUS_E_CONFIG, "prompts_dir '" + dir + "' is not a directory");
    std::vector<fs::path> files;
    for (const auto &e : fs::directory_iterator(dir, ec)) {
      const auto ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(e.path());
    }
    if (ec) throw chorus::Error(CHORUS_E_CONFIG, "prompts_dir '" + dir + "': " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto &f : files) load_file(f, out.roles);
  }
  if (!defaults_path.empty()) out.default_instructions = trim(read_file(defaults_path, "default instructions"));
  std::string sys;
  if (!role.empty()) {
    auto it = out.roles.find(role);
    if (it != out.roles.end())
      sys = trim(it->second.system_prompt);
    else if (warning != nullptr && !dir.empty())
      *warning = "role '" + role + "' is not defined in " + dir + "; using the default instructions only";
  }
  if (!sys.empty() && !out.default_instructions.empty())
    out.composed = sys + "\n\n" + out.default_instructions;
  else
    out.composed = sys.empty() ? out.default_instructions : sys;
  return out;
}

}  // namespace chorus::reasoning
