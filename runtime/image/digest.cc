#include "runtime/image/digest.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "runtime/base/strings.h"

namespace berth::image {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsAsciiAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

void Sha256Hasher::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  // Failures here mean OpenSSL could not allocate or lost SHA-256 itself;
  // there is no sensible way to go on hashing content.
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) std::abort();
}

Sha256Hasher::~Sha256Hasher() = default;
Sha256Hasher::Sha256Hasher(Sha256Hasher&&) noexcept = default;
Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&&) noexcept = default;

void Sha256Hasher::Update(std::string_view data) {
  if (data.empty()) return;
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) std::abort();
}

std::string Sha256Hasher::Digest() const {
  // Finish a copy so the running state stays usable for more Update() calls.
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> copy(EVP_MD_CTX_new());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (copy == nullptr || EVP_MD_CTX_copy_ex(copy.get(), ctx_.get()) != 1 ||
      EVP_DigestFinal_ex(copy.get(), md, &len) != 1) {
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kSha256Prefix);
  out.reserve(kSha256Prefix.size() + 2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string Sha256Digest(std::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.Digest();
}

bool IsSha256Hex(std::string_view hex) {
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!IsLowerHex(c)) return false;
  }
  return true;
}

absl::Status ValidateDigest(std::string_view digest) {
  auto invalid = [&](std::string_view reason) {
    return absl::InvalidArgumentError(StrCat("digest \"", digest, "\": ", reason));
  };
  if (digest.empty()) return absl::InvalidArgumentError("digest is empty");
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos) return invalid("missing algorithm (want sha256:<hex>)");
  std::string_view algorithm = digest.substr(0, colon);
  std::string_view hex = digest.substr(colon + 1);
  if (algorithm != "sha256") {
    // Name a well-formed but foreign algorithm as such: "sha512:..." is a
    // legal OCI digest that berth simply does not implement.
    bool well_formed = !algorithm.empty();
    for (char c : algorithm) {
      if (!IsAsciiAlnum(c) && c != '+' && c != '.' && c != '_' && c != '-') well_formed = false;
    }
    if (well_formed) {
      return invalid(
          StrCat("unsupported algorithm \"", algorithm, "\" (only sha256 is supported)"));
    }
    return invalid("malformed algorithm");
  }
  if (hex.size() != 64) {
    return invalid(StrCat("sha256 needs 64 hex digits, got ", hex.size(), " characters"));
  }
  for (char c : hex) {
    if (!IsLowerHex(c)) return invalid("sha256 hex must be lowercase hex digits [0-9a-f]");
  }
  return absl::OkStatus();
}

std::string_view DigestHex(std::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos) return {};
  return digest.substr(colon + 1);
}

}  // namespace berth::image
