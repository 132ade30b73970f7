// iptables, run as a subprocess (`iptables -w`), for the NAT and filter rules of
// berth-bridge and berth-portmap: idempotent helpers that add a rule or chain only when it is
// missing and remove them without failing when they are already gone.
//
//   ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
//   RETURN_IF_ERROR(ipt.EnsureChain("nat", chain));
//   RETURN_IF_ERROR(ipt.EnsureRule("nat", "POSTROUTING", {"-s", ip, "-j", chain}));
//   RETURN_IF_ERROR(ipt.DeleteRulesJumpingTo("nat", "POSTROUTING", chain));
//   RETURN_IF_ERROR(ipt.DeleteChain("nat", chain));
//
// Whatever iptables backend the machine chose (Debian: nf_tables) is used, as Debian's CNI
// plugins do, so both plugin sets see each other's rules.
#ifndef BERTH_CNI_PLUGINS_IPTABLES_H_
#define BERTH_CNI_PLUGINS_IPTABLES_H_

#include <functional>
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
  explicit Iptables(std::string binary) : binary_(std::move(binary)) {}
  std::string binary_;
};

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_IPTABLES_H_
