// iptables for the NAT and filter rules of berth-bridge and berth-portmap. Every process
// costs 10-25 ms, so a plugin reads the tables once (`iptables-save`, parsed in-process into
// an IptablesState), decides what is missing, and writes all its changes in one
// `iptables-restore -w --noflush` transaction (an IptablesBatch) instead of a process per
// rule. Usually there is not even the read: the batch asserts (-C) that the shared rules are
// in place and creates (-N, which fails if it exists) the attachment's chain, so one process
// does a whole ADD or DEL; only when that fails does the plugin read and write.
//
//   ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
//   ASSIGN_OR_RETURN(IptablesState state, ipt.Save({"nat"}));
//   IptablesBatch batch;
//   batch.DeclareChain("nat", chain);                        // created, or flushed
//   batch.Append("nat", chain, {"-j", "MASQUERADE"});
//   if (!state.HasRule("nat", "POSTROUTING", jump)) batch.Append("nat", "POSTROUTING", jump);
//   RETURN_IF_ERROR(ipt.Restore(batch));
//
// The per-rule helpers below (Run, ChainExists, EnsureRule, ...) run one `iptables` each;
// the plugins use only Run and ChainExists, for CHECK.
//
// Whatever iptables backend the machine chose (Debian: nf_tables) is used, as Debian's CNI
// plugins do, so both plugin sets see each other's rules.
#ifndef BERTH_CNI_PLUGINS_IPTABLES_H_
#define BERTH_CNI_PLUGINS_IPTABLES_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::cni::plugins {

// A chain name for one attachment: prefix + 16 hex digits of a hash of network name and
// container id (iptables chain names have at most 28 characters).
std::string AttachmentChain(std::string_view prefix, std::string_view network,
                            std::string_view container_id);

// The comment berth puts on the rule that jumps to an attachment's chain; GC reads it back.
std::string AttachmentComment(std::string_view network, std::string_view container_id);

// Splits an `iptables -S` line into words, dropping the quotes iptables puts around words
// with spaces in them.
std::vector<std::string> SplitRuleLine(std::string_view line);

class Iptables;

// A parsed `iptables-save`: the chains of each table it printed and their rules, each rule
// as the words after "-A <chain>" (quotes removed).
class IptablesState {
 public:
  using Rule = std::vector<std::string>;
  static IptablesState Parse(std::string_view save_output);

  bool HasTable(const std::string& table) const { return tables_.count(table) > 0; }
  bool HasChain(const std::string& table, const std::string& chain) const;
  // The rules of a chain, in order; empty when the chain or table is missing.
  const std::vector<Rule>& Rules(const std::string& table, const std::string& chain) const;
  // Whether the chain holds exactly this rule, as iptables-save prints it.
  bool HasRule(const std::string& table, const std::string& chain, const Rule& rule) const;
  // The rules of `chain` that jump (-j or -g) to `target`.
  std::vector<Rule> RulesJumpingTo(const std::string& table, const std::string& chain,
                                   const std::string& target) const;

 private:
  // table -> chain -> rules; a chain with no rules is present with an empty list.
  std::map<std::string, std::map<std::string, std::vector<Rule>>> tables_;
};

// The changes of one `iptables-restore --noflush` run. Each table's commands are applied in
// the order given, as one transaction per table: all of them or none.
class IptablesBatch {
 public:
  using Rule = std::vector<std::string>;
  // ":<chain> - [0:0]": creates the chain, or flushes it when it exists. Never fails.
  void DeclareChain(const std::string& table, const std::string& chain);
  // "-N": creates the chain; the whole transaction fails if it already exists (how a racing
  // creation of a shared chain is detected).
  void NewChain(const std::string& table, const std::string& chain);
  void Append(const std::string& table, const std::string& chain, const Rule& rule);
  void InsertFirst(const std::string& table, const std::string& chain, const Rule& rule);
  // "-C": fails the whole run if the rule is missing; tables given later are not touched.
  // Lets an optimistic batch assume shared rules are in place without reading them first.
  void Check(const std::string& table, const std::string& chain, const Rule& rule);
  // "-D": fails the transaction if the rule is missing.
  void Delete(const std::string& table, const std::string& chain, const Rule& rule);
  // "-F" and "-X" of the chain; fails the transaction if it is missing.
  void FlushAndDeleteChain(const std::string& table, const std::string& chain);

  bool empty() const { return tables_.empty(); }
  // The iptables-restore input.
  std::string Script() const;

 private:
  struct Table {
    std::string name;
    std::vector<std::string> declarations;  // ":chain - [0:0]" lines, first in the block
    std::vector<std::string> commands;
  };
  Table& For(const std::string& table);
  std::vector<Table> tables_;
};

// Replaces the rules of `parent` that jump to `target` with `want` (in `state`'s view):
// nothing when they are already exactly `want`, else deletes them all and appends `want`.
void ReplaceJumps(const IptablesState& state, IptablesBatch& batch, const std::string& table,
                  const std::string& parent, const std::string& target,
                  const std::vector<IptablesBatch::Rule>& want);

// Removes, in `batch`, every rule of `parent` jumping to `chain` and the chain itself, as far
// as `state` has them.
void DeleteAttachmentChain(const IptablesState& state, IptablesBatch& batch,
                           const std::string& table, const std::string& parent,
                           const std::string& chain);

// An exclusive lock, among berth's plugins, around creating shared (not per-pod) chains and
// rules: read, add what is missing, write. Taken only when a first read found something
// shared missing. Best effort: without /run, racing creators still fail on "-N" and re-read.
class SharedSetupLock {
 public:
  SharedSetupLock();
  ~SharedSetupLock();
  SharedSetupLock(const SharedSetupLock&) = delete;
  SharedSetupLock& operator=(const SharedSetupLock&) = delete;

 private:
  int fd_ = -1;
};

// The (network, container id) of a rule carrying AttachmentComment, nullopt for other rules.
std::optional<std::pair<std::string, std::string>> RuleAttachment(
    const std::vector<std::string>& rule);

// GC of per-attachment chains: deletes every rule of `parent` commented with an attachment
// of `network` whose container id is not in `valid_ids`, and the chain it jumps to.
absl::Status CollectAttachmentChains(const Iptables& ipt, const std::string& table,
                                     const std::string& parent, const std::string& network,
                                     const std::set<std::string>& valid_ids);

class Iptables {
 public:
  // The iptables binary: /usr/sbin/iptables, /sbin/iptables, else the first in PATH.
  // FailedPrecondition naming the package when there is none.
  static absl::StatusOr<Iptables> Find();

  // One `iptables-save` (with -t for a single table) parsed. Tables that do not exist yet
  // are missing from the state.
  absl::StatusOr<IptablesState> Save(const std::vector<std::string>& tables) const;
  // One `iptables-restore -w --noflush` of the batch; nothing for an empty batch.
  absl::Status Restore(const IptablesBatch& batch) const;

  // `iptables -w -t table <args>`: its stdout, or an error with its stderr.
  absl::StatusOr<std::string> Run(const std::string& table, std::vector<std::string> args) const;

  absl::StatusOr<bool> ChainExists(const std::string& table, const std::string& chain) const;
  absl::Status EnsureChain(const std::string& table, const std::string& chain) const;
  // Appends (or, with `first`, inserts at the top) the rule unless `-C` finds it.
  absl::Status EnsureRule(const std::string& table, const std::string& chain,
                          const std::vector<std::string>& rule, bool first = false) const;
  // Rules of a chain as `-S` prints them, each without its leading "-A <chain>".
  absl::StatusOr<std::vector<std::vector<std::string>>> ListRules(const std::string& table,
                                                                  const std::string& chain) const;
  // Deletes every rule of `chain` whose words satisfy `match`. OK when the chain is missing.
  absl::Status DeleteRulesIf(
      const std::string& table, const std::string& chain,
      const std::function<bool(const std::vector<std::string>&)>& match) const;
  absl::Status DeleteRulesJumpingTo(const std::string& table, const std::string& chain,
                                    const std::string& target) const;
  // Flushes and removes the chain; OK when it is missing.
  absl::Status DeleteChain(const std::string& table, const std::string& chain) const;

 private:
  explicit Iptables(std::string binary);
  absl::StatusOr<std::string> RunTool(const std::string& tool, std::vector<std::string> args,
                                      const std::string& stdin_data) const;
  std::string binary_;  // .../iptables
  std::string dir_;     // its directory, where iptables-save and iptables-restore are
};

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_IPTABLES_H_
