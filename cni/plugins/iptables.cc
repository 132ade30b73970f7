#include "cni/plugins/iptables.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>

#include "runtime/base/strings.h"
#include "runtime/oci/subprocess.h"

namespace berth::cni::plugins {
namespace {

uint64_t Fnv1a(std::string_view a, std::string_view b) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));  // "ab"+"c" and "a"+"bc" differ
  mix(b);
  return h;
}

}  // namespace

std::string AttachmentChain(std::string_view prefix, std::string_view network,
                            std::string_view container_id) {
  return fmt::format("{}{:016x}", prefix, Fnv1a(network, container_id));
}

std::string AttachmentComment(std::string_view network, std::string_view container_id) {
  return StrCat("berth:", network, ":", container_id);
}

std::vector<std::string> SplitRuleLine(std::string_view line) {
  std::vector<std::string> words;
  std::string cur;
  bool quoted = false, in_word = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
    } else if ((c == ' ' || c == '\t' || c == '\n') && !quoted) {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(cur);
  return words;
}

std::optional<std::pair<std::string, std::string>> RuleAttachment(
    const std::vector<std::string>& rule) {
  for (size_t i = 0; i + 1 < rule.size(); ++i) {
    if (rule[i] != "--comment") continue;
    const std::string& c = rule[i + 1];
    if (c.rfind("berth:", 0) != 0) return std::nullopt;
    size_t colon = c.find(':', 6);
    if (colon == std::string::npos) return std::nullopt;
    return std::make_pair(c.substr(6, colon - 6), c.substr(colon + 1));
  }
  return std::nullopt;
}

absl::Status CollectAttachmentChains(const Iptables& ipt, const std::string& table,
                                     const std::string& parent, const std::string& network,
                                     const std::set<std::string>& valid_ids) {
  absl::StatusOr<bool> exists = ipt.ChainExists(table, parent);
  if (!exists.ok() || !*exists) return exists.status();
  absl::StatusOr<std::vector<std::vector<std::string>>> rules = ipt.ListRules(table, parent);
  if (!rules.ok()) return rules.status();
  std::set<std::string> stale_chains;
  for (const std::vector<std::string>& rule : *rules) {
    std::optional<std::pair<std::string, std::string>> who = RuleAttachment(rule);
    if (!who || who->first != network || valid_ids.count(who->second)) continue;
    for (size_t i = 0; i + 1 < rule.size(); ++i) {
      if (rule[i] == "-j") stale_chains.insert(rule[i + 1]);
    }
  }
  absl::Status first_error;
  for (const std::string& chain : stale_chains) {
    absl::Status s = ipt.DeleteRulesJumpingTo(table, parent, chain);
    if (s.ok()) s = ipt.DeleteChain(table, chain);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

absl::StatusOr<Iptables> Iptables::Find() {
  for (const char* p : {"/usr/sbin/iptables", "/sbin/iptables"}) {
    if (access(p, X_OK) == 0) return Iptables(p);
  }
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = StrCat(dirs.substr(start, end - start), "/iptables");
    if (end > start && access(candidate.c_str(), X_OK) == 0) return Iptables(candidate);
    start = end + 1;
  }
  return absl::FailedPreconditionError("iptables is not installed (Debian package iptables)");
}

absl::StatusOr<std::string> Iptables::Run(const std::string& table,
                                          std::vector<std::string> args) const {
  std::vector<std::string> argv = {binary_, "-w", "-t", table};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<oci::SubprocessResult> r =
      oci::RunSubprocess({.argv = argv, .timeout = absl::Seconds(60)});
  std::string cmd = "iptables -t " + table;
  for (const std::string& a : args) cmd += " " + a;
  if (!r.ok()) return absl::InternalError(StrCat(cmd, ": ", r.status().message()));
  if (r->timed_out) return absl::DeadlineExceededError(StrCat(cmd, ": timed out"));
  if (r->ExitCode() != 0) {
    std::string err = r->err.empty() ? r->out : r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return absl::InternalError(StrCat(cmd, ": ", r->Describe(), ": ", err));
  }
  return r->out;
}

absl::StatusOr<bool> Iptables::ChainExists(const std::string& table,
                                           const std::string& chain) const {
  // -S of a missing chain fails; there is no other error -S of an existing chain can have
  // that matters here (a broken iptables fails the next command loudly).
  return Run(table, {"-S", chain}).ok();
}

absl::Status Iptables::EnsureChain(const std::string& table, const std::string& chain) const {
  absl::StatusOr<bool> exists = ChainExists(table, chain);
  if (!exists.ok()) return exists.status();
  if (*exists) return absl::OkStatus();
  absl::StatusOr<std::string> r = Run(table, {"-N", chain});
  if (r.ok()) return absl::OkStatus();
  // Another plugin process may have created it meanwhile.
  exists = ChainExists(table, chain);
  if (exists.ok() && *exists) return absl::OkStatus();
  return r.status();
}

absl::Status Iptables::EnsureRule(const std::string& table, const std::string& chain,
                                  const std::vector<std::string>& rule, bool first) const {
  std::vector<std::string> check = {"-C", chain};
  check.insert(check.end(), rule.begin(), rule.end());
  if (Run(table, check).ok()) return absl::OkStatus();
  std::vector<std::string> add =
      first ? std::vector<std::string>{"-I", chain, "1"} : std::vector<std::string>{"-A", chain};
  add.insert(add.end(), rule.begin(), rule.end());
  return Run(table, add).status();
}

absl::StatusOr<std::vector<std::vector<std::string>>> Iptables::ListRules(
    const std::string& table, const std::string& chain) const {
  absl::StatusOr<std::string> out = Run(table, {"-S", chain});
  if (!out.ok()) return out.status();
  std::vector<std::vector<std::string>> rules;
  size_t start = 0;
  while (start < out->size()) {
    size_t end = out->find('\n', start);
    if (end == std::string::npos) end = out->size();
    std::vector<std::string> words =
        SplitRuleLine(std::string_view(*out).substr(start, end - start));
    if (words.size() >= 2 && words[0] == "-A" && words[1] == chain) {
      rules.emplace_back(words.begin() + 2, words.end());
    }
    start = end + 1;
  }
  return rules;
}

absl::Status Iptables::DeleteRulesIf(
    const std::string& table, const std::string& chain,
    const std::function<bool(const std::vector<std::string>&)>& match) const {
  absl::StatusOr<bool> exists = ChainExists(table, chain);
  if (!exists.ok()) return exists.status();
  if (!*exists) return absl::OkStatus();
  absl::StatusOr<std::vector<std::vector<std::string>>> rules = ListRules(table, chain);
  if (!rules.ok()) return rules.status();
  for (const std::vector<std::string>& rule : *rules) {
    if (!match(rule)) continue;
    std::vector<std::string> del = {"-D", chain};
    del.insert(del.end(), rule.begin(), rule.end());
    absl::StatusOr<std::string> r = Run(table, del);
    // Gone meanwhile is fine: the goal is that it is not there.
    if (!r.ok() && Run(table,
                       [&] {
                         std::vector<std::string> c = {"-C", chain};
                         c.insert(c.end(), rule.begin(), rule.end());
                         return c;
                       }())
                       .ok()) {
      return r.status();
    }
  }
  return absl::OkStatus();
}

absl::Status Iptables::DeleteRulesJumpingTo(const std::string& table, const std::string& chain,
                                            const std::string& target) const {
  return DeleteRulesIf(table, chain, [&](const std::vector<std::string>& rule) {
    for (size_t i = 0; i + 1 < rule.size(); ++i) {
      if ((rule[i] == "-j" || rule[i] == "-g") && rule[i + 1] == target) return true;
    }
    return false;
  });
}

absl::Status Iptables::DeleteChain(const std::string& table, const std::string& chain) const {
  absl::StatusOr<bool> exists = ChainExists(table, chain);
  if (!exists.ok()) return exists.status();
  if (!*exists) return absl::OkStatus();
  absl::StatusOr<std::string> r = Run(table, {"-F", chain});
  if (r.ok()) r = Run(table, {"-X", chain});
  if (r.ok()) return absl::OkStatus();
  exists = ChainExists(table, chain);
  if (exists.ok() && !*exists) return absl::OkStatus();
  return r.status();
}

}  // namespace berth::cni::plugins
