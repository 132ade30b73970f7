// SHA-256 content digests in the OCI form "sha256:<64 lowercase hex>".
//
//   Sha256Hasher hasher;
//   hasher.Update(chunk1);
//   hasher.Update(chunk2);
//   std::string digest = hasher.Digest();          // "sha256:9f86d0..."
//
//   std::string d = Sha256Digest(manifest_body);   // the same, in one call
//   RETURN_IF_ERROR(ValidateDigest(untrusted));    // before using it in a path
//   std::string_view hex = DigestHex(d);           // "9f86d0..."
//
// berth stores and compares digests only in this one canonical form: sha256
// is the only algorithm registries and OCI layouts use in practice, and a
// single spelling lets a digest be used as a file name once validated.
#ifndef BERTH_RUNTIME_IMAGE_DIGEST_H_
#define BERTH_RUNTIME_IMAGE_DIGEST_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

// OpenSSL's context type, kept out of this header.
struct evp_md_ctx_st;

namespace berth::image {

inline constexpr std::string_view kSha256Prefix = "sha256:";

// Incremental SHA-256 over OpenSSL's EVP interface. Movable, not copyable;
// not thread-safe (one hasher per stream).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&&) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&&) noexcept;

  void Update(std::string_view data);

  // The digest of everything passed to Update() so far, "sha256:<hex>". It
  // does not end the stream: Update() may go on and Digest() be asked again.
  std::string Digest() const;

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
};

// "sha256:<hex>" of data.
std::string Sha256Digest(std::string_view data);

// OK when digest is exactly "sha256:" followed by 64 lowercase hex digits;
// InvalidArgument naming the digest and the reason otherwise. Anything that
// passes is safe to use as a file name.
absl::Status ValidateDigest(std::string_view digest);

// True for exactly 64 lowercase hex digits.
bool IsSha256Hex(std::string_view hex);

// The part after the algorithm: "9f86..." for "sha256:9f86...". Empty when
// digest has no ':'. Meant for digests that passed ValidateDigest().
std::string_view DigestHex(std::string_view digest);

}  // namespace berth::image

#endif  // BERTH_RUNTIME_IMAGE_DIGEST_H_
