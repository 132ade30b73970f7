#include "cni/plugins/iptables.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/base/unique_fd.h"
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

// A word of an iptables-restore line, quoted when it has to be.
std::string Quote(const std::string& word) {
  if (!word.empty() && word.find_first_of(" \t\"\\'") == std::string::npos) return word;
  std::string q = "\"";
  for (char c : word) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

std::string Line(std::string_view op, const std::string& chain,
                 const std::vector<std::string>& rule) {
  std::string line = StrCat(op, " ", chain);
  for (const std::string& w : rule) line += " " + Quote(w);
  return line;
}

bool JumpsTo(const std::vector<std::string>& rule, const std::string& target) {
  for (size_t i = 0; i + 1 < rule.size(); ++i) {
    if ((rule[i] == "-j" || rule[i] == "-g") && rule[i + 1] == target) return true;
  }
  return false;
}

}  // namespace

IptablesState IptablesState::Parse(std::string_view out) {
  IptablesState state;
  std::map<std::string, std::vector<Rule>>* table = nullptr;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string_view::npos) end = out.size();
    std::string_view line = out.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      table = &state.tables_[std::string(line.substr(1))];
    } else if (line[0] == ':' && table != nullptr) {
      size_t space = line.find(' ');
      (*table)[std::string(line.substr(1, space == std::string_view::npos ? line.npos
                                                                          : space - 1))];
    } else if (line.rfind("-A ", 0) == 0 && table != nullptr) {
      std::vector<std::string> words = SplitRuleLine(line);
      if (words.size() < 2) continue;
      (*table)[words[1]].emplace_back(words.begin() + 2, words.end());
    } else if (line == "COMMIT") {
      table = nullptr;
    }
  }
  return state;
}

bool IptablesState::HasChain(const std::string& table, const std::string& chain) const {
  auto t = tables_.find(table);
  return t != tables_.end() && t->second.count(chain) > 0;
}

const std::vector<IptablesState::Rule>& IptablesState::Rules(const std::string& table,
                                                             const std::string& chain) const {
  static const std::vector<Rule> kNone;
  auto t = tables_.find(table);
  if (t == tables_.end()) return kNone;
  auto c = t->second.find(chain);
  return c == t->second.end() ? kNone : c->second;
}

bool IptablesState::HasRule(const std::string& table, const std::string& chain,
                            const Rule& rule) const {
  const std::vector<Rule>& rules = Rules(table, chain);
  return std::find(rules.begin(), rules.end(), rule) != rules.end();
}

std::vector<IptablesState::Rule> IptablesState::RulesJumpingTo(const std::string& table,
                                                               const std::string& chain,
                                                               const std::string& target) const {
  std::vector<Rule> out;
  for (const Rule& r : Rules(table, chain)) {
    if (JumpsTo(r, target)) out.push_back(r);
  }
  return out;
}

IptablesBatch::Table& IptablesBatch::For(const std::string& table) {
  for (Table& t : tables_) {
    if (t.name == table) return t;
  }
  tables_.push_back({.name = table});
  return tables_.back();
}

void IptablesBatch::DeclareChain(const std::string& table, const std::string& chain) {
  For(table).declarations.push_back(StrCat(":", chain, " - [0:0]"));
}

void IptablesBatch::NewChain(const std::string& table, const std::string& chain) {
  For(table).commands.push_back(StrCat("-N ", chain));
}

void IptablesBatch::Append(const std::string& table, const std::string& chain, const Rule& rule) {
  For(table).commands.push_back(Line("-A", chain, rule));
}

void IptablesBatch::InsertFirst(const std::string& table, const std::string& chain,
                                const Rule& rule) {
  For(table).commands.push_back(Line("-I", chain + " 1", rule));
}

void IptablesBatch::Check(const std::string& table, const std::string& chain, const Rule& rule) {
  For(table).commands.push_back(Line("-C", chain, rule));
}

void IptablesBatch::Delete(const std::string& table, const std::string& chain, const Rule& rule) {
  For(table).commands.push_back(Line("-D", chain, rule));
}

void IptablesBatch::FlushAndDeleteChain(const std::string& table, const std::string& chain) {
  For(table).commands.push_back(StrCat("-F ", chain));
  For(table).commands.push_back(StrCat("-X ", chain));
}

std::string IptablesBatch::Script() const {
  std::string script;
  for (const Table& t : tables_) {
    script += StrCat("*", t.name, "\n");
    for (const std::string& l : t.declarations) script += l + "\n";
    for (const std::string& l : t.commands) script += l + "\n";
    script += "COMMIT\n";
  }
  return script;
}

void ReplaceJumps(const IptablesState& state, IptablesBatch& batch, const std::string& table,
                  const std::string& parent, const std::string& target,
                  const std::vector<IptablesBatch::Rule>& want) {
  std::vector<IptablesState::Rule> have = state.RulesJumpingTo(table, parent, target);
  if (have == want) return;
  for (const IptablesState::Rule& r : have) batch.Delete(table, parent, r);
  for (const IptablesBatch::Rule& r : want) batch.Append(table, parent, r);
}

void DeleteAttachmentChain(const IptablesState& state, IptablesBatch& batch,
                           const std::string& table, const std::string& parent,
                           const std::string& chain) {
  for (const IptablesState::Rule& r : state.RulesJumpingTo(table, parent, chain)) {
    batch.Delete(table, parent, r);
  }
  if (state.HasChain(table, chain)) batch.FlushAndDeleteChain(table, chain);
}

SharedSetupLock::SharedSetupLock() {
  fd_ = open("/run/berth-cni-iptables.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ >= 0) {
    while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
}

SharedSetupLock::~SharedSetupLock() {
  if (fd_ >= 0) close(fd_);
}

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
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<IptablesState> state = ipt.Save({table});
    if (!state.ok()) return state.status();
    std::set<std::string> stale_chains;
    for (const std::vector<std::string>& rule : state->Rules(table, parent)) {
      std::optional<std::pair<std::string, std::string>> who = RuleAttachment(rule);
      if (!who || who->first != network || valid_ids.count(who->second)) continue;
      for (size_t i = 0; i + 1 < rule.size(); ++i) {
        if (rule[i] == "-j" || rule[i] == "-g") stale_chains.insert(rule[i + 1]);
      }
    }
    IptablesBatch batch;
    for (const std::string& chain : stale_chains) {
      DeleteAttachmentChain(*state, batch, table, parent, chain);
    }
    last = ipt.Restore(batch);
    if (last.ok()) return last;
    // Changed meanwhile (another plugin's DEL): read again.
  }
  return last;
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

Iptables::Iptables(std::string binary) : binary_(std::move(binary)) {
  size_t slash = binary_.rfind('/');
  dir_ = slash == std::string::npos ? "." : binary_.substr(0, slash);
}

absl::StatusOr<std::string> Iptables::RunTool(const std::string& tool,
                                              std::vector<std::string> args,
                                              const std::string& stdin_data) const {
  std::vector<std::string> argv = {StrCat(dir_, "/", tool)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string cmd = tool;
  for (const std::string& a : args) cmd += " " + a;
  UniqueFd in;
  if (!stdin_data.empty()) {
    in = UniqueFd(memfd_create("iptables-restore", MFD_CLOEXEC));
    if (in.get() < 0) return ErrnoStatus(errno, StrCat(cmd, ": memfd_create"));
    size_t off = 0;
    while (off < stdin_data.size()) {
      ssize_t n = write(in.get(), stdin_data.data() + off, stdin_data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoStatus(errno, StrCat(cmd, ": write stdin"));
      off += n;
    }
    if (lseek(in.get(), 0, SEEK_SET) != 0) return ErrnoStatus(errno, StrCat(cmd, ": lseek"));
  }
  absl::StatusOr<oci::SubprocessResult> r =
      oci::RunSubprocess({.argv = argv,
                          .stdin_fd = stdin_data.empty() ? oci::kDevNull : in.get(),
                          .timeout = absl::Seconds(60)});
  if (!r.ok()) return absl::InternalError(StrCat(cmd, ": ", r.status().message()));
  if (r->timed_out) return absl::DeadlineExceededError(StrCat(cmd, ": timed out"));
  if (r->ExitCode() != 0) {
    std::string err = r->err.empty() ? r->out : r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    if (!stdin_data.empty()) err += StrCat("; input:\n", stdin_data);
    return absl::InternalError(StrCat(cmd, ": ", r->Describe(), ": ", err));
  }
  return r->out;
}

absl::StatusOr<IptablesState> Iptables::Save(const std::vector<std::string>& tables) const {
  std::vector<std::string> args;
  if (tables.size() == 1) args = {"-t", tables[0]};
  ASSIGN_OR_RETURN(std::string out, RunTool("iptables-save", args, ""));
  return IptablesState::Parse(out);
}

absl::Status Iptables::Restore(const IptablesBatch& batch) const {
  if (batch.empty()) return absl::OkStatus();
  return RunTool("iptables-restore", {"-w", "--noflush"}, batch.Script()).status();
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
