#include "rebuilder/rebuild/verdict.h"

#include "rebuilder/verdict/rule.h"

#include <algorithm>
#include <set>

#include "rebuilder/base/hex.h"
#include "rebuilder/distro/inspect.h"

namespace kmr::build {

std::string_view module_root_name(ModuleRoot v) {
  switch (v) {
    case ModuleRoot::kMatch: return "match";
    case ModuleRoot::kMismatch: return "mismatch";
    case ModuleRoot::kAbsent: return "absent";
    case ModuleRoot::kInvalid: return "invalid";
  }
  return "invalid";
}

std::string_view files_tier_name(FilesTier t) {
  switch (t) {
    case FilesTier::kIdentical: return "identical";
    case FilesTier::kContentIdentical: return "content-identical";
    case FilesTier::kIdenticalModuloSignatures: return "identical-modulo-signatures";
    case FilesTier::kDifferent: return "different";
  }
  return "different";
}

std::string root_hex(const std::optional<kmod::MerkleRoot>& root) {
  return root ? to_hex(root->hash) : std::string();
}

std::string_view content_root_name(ContentRoot v) {
  switch (v) {
    case ContentRoot::kMatch: return "match";
    case ContentRoot::kMismatch: return "mismatch";
    case ContentRoot::kAbsent: return "absent";
  }
  return "mismatch";
}

SignatureCheck check_shipped_signatures(const std::vector<const Artifact*>& shipped) {
  SignatureCheck c;
  c.checked = true;
  std::vector<std::string> files;
  for (const auto* a : shipped) files.push_back(a->file);
  distro::InspectOptions o;
  o.layout_only = true;
  auto rep = distro::inspect_packages(files, o);
  if (!rep) {
    c.note = "cannot read the shipped packages: " + rep.error().to_string();
    return c;
  }
  const auto& sig = rep->layout.module_signatures;
  if (!sig) {
    c.note = "no shipped module carries a PKCS#7 signature";
    return c;
  }
  c.signed_count = sig->signed_count;
  c.verified = sig->verified;
  c.ok = sig->ok;
  for (const auto& [module, reason] : sig->failed) {
    if (c.failed.size() < 20) c.failed.push_back({module, reason});
  }
  if (!c.ok) {
    c.note = std::to_string(sig->failed.size()) + " of " + std::to_string(sig->signed_count) +
             " shipped module signatures do not verify against the shipped kernel's certificates";
  }
  return c;
}

SignatureCheck require_verified_signatures(FilesReport& files, const std::vector<const Artifact*>& shipped) {
  if (files.tier != FilesTier::kIdenticalModuloSignatures) return {};
  SignatureCheck c = check_shipped_signatures(shipped);
  if (!c.ok) files.tier = FilesTier::kDifferent;
  return c;
}

void add_content_root_json(nlohmann::json& j, bool verdict, const ContentRootReport& cr, const SignatureCheck& sig) {
  using nlohmann::json;
  j["module_content_root"] = verdict ? json(content_root_name(cr.verdict)) : json(nullptr);
  j["shipped_content_root"] = cr.shipped ? json(root_hex(cr.shipped)) : json(nullptr);
  j["rebuilt_content_root"] = cr.rebuilt ? json(root_hex(cr.rebuilt)) : json(nullptr);
  j["content_root_levels"] = cr.shipped ? json(cr.shipped->levels) : json(nullptr);
  j["content_root_note"] = cr.note;
  json failed = json::array();
  for (const auto& f : sig.failed) failed.push_back({{"module", f.module}, {"reason", f.reason}});
  j["signatures"] = {{"checked", sig.checked}, {"signed", sig.signed_count}, {"verified", sig.verified},
                     {"ok", sig.ok},           {"failed", failed},           {"note", sig.note}};
}

void add_masked_json(nlohmann::json& j, const FilesReport& files) {
  using nlohmann::json;
  json masked = json::array();
  for (const auto& m : files.masked) masked.push_back({{"member", m.member}, {"ranges", kmod::ranges_json(m.ranges)}});
  json notes = json::array();
  for (const auto& n : files.mask_notes) notes.push_back({{"member", n.member}, {"note", n.note}});
  j["masked"] = std::move(masked);
  j["mask_notes"] = std::move(notes);
}

bool is_reproducible(FilesTier files, ModuleRoot module_root, ContentRoot content_root) {
  return is_reproducible(files_tier_name(files), module_root_name(module_root), content_root_name(content_root));
}

bool is_reproducible(std::string_view files, std::optional<std::string_view> module_root,
                     std::optional<std::string_view> module_content_root) {
  return verdict::is_reproducible(files, module_root, module_content_root);
}

namespace {

const Artifact* order_holder(const std::vector<const Artifact*>& set) {
  for (const auto* a : set) {
    if (!a->modules_order.empty()) return a;
  }
  return nullptr;
}

}  // namespace

std::optional<kmod::MerkleRoot> modules_root(const std::vector<const Artifact*>& set, std::string* why) {
  const Artifact* holder = order_holder(set);
  if (!holder) {
    if (why) *why = "no modules.order";
    return std::nullopt;
  }
  const std::size_t n = holder->modules_order.size();
  std::vector<Digest256> leaves(n);
  std::vector<bool> filled(n, false);
  for (const auto* a : set) {
    for (const auto& m : a->modules) {
      if (m.order_pos < 0 || static_cast<std::size_t>(m.order_pos) >= n) continue;
      if (!m.error.empty()) {
        if (why) *why = m.member + ": " + m.error;
        return std::nullopt;
      }
      leaves[static_cast<std::size_t>(m.order_pos)] = m.leaf_at_order;
      filled[static_cast<std::size_t>(m.order_pos)] = true;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!filled[i]) {
      if (why) *why = holder->modules_order[i] + ": listed in modules.order but missing";
      return std::nullopt;
    }
  }
  return kmod::MerkleTree(std::move(leaves)).root();
}

namespace {
bool has_modules(const std::vector<const Artifact*>& set) {
  return std::any_of(set.begin(), set.end(), [](const Artifact* a) { return !a->modules.empty() || !a->modules_order.empty(); });
}
}  // namespace

ContentRootReport content_root_verdict(const std::vector<const Artifact*>& shipped,
                                       const std::vector<const Artifact*>& rebuilt,
                                       const std::optional<kmod::MerkleRoot>& embedded) {
  ContentRootReport rep;
  if (!has_modules(shipped) && !has_modules(rebuilt)) {
    rep.note = "no modules on either side";
    return rep;
  }
  std::string why_s, why_r;
  rep.shipped = modules_root(shipped, &why_s);
  rep.rebuilt = modules_root(rebuilt, &why_r);
  rep.verdict = ContentRoot::kMismatch;
  if (!rep.shipped) {
    rep.note = "shipped modules: " + why_s;
  } else if (!rep.rebuilt) {
    rep.note = "rebuilt modules: " + why_r;
  } else if (embedded && !(*embedded == *rep.shipped)) {
    rep.note = "the shipped content root differs from the root embedded in the shipped image";
  } else if (!(*rep.shipped == *rep.rebuilt)) {
    rep.note = "the rebuilt modules' contents differ from the shipped ones";
  } else {
    rep.verdict = ContentRoot::kMatch;
  }
  return rep;
}

ModuleRootReport module_root_verdict(const std::vector<const Artifact*>& shipped,
                                     const std::vector<const Artifact*>& rebuilt) {
  ModuleRootReport rep;
  std::string why;
  if (!rebuilt.empty()) {
    rep.rebuilt = modules_root(rebuilt, &why);
    if (!rep.rebuilt) why = "rebuilt modules: " + why;
  }
  bool image_found = false;
  for (const auto* a : shipped) {
    image_found = image_found || a->image_found;
    if (a->image_root && !rep.shipped) rep.shipped = a->image_root;
  }
  if (!rep.shipped) {
    for (const auto* a : shipped) {
      if (!a->image_error.empty()) {
        rep.verdict = ModuleRoot::kInvalid;
        rep.invalid.push_back({a->file, "kernel image unreadable: " + a->image_error});
        return rep;
      }
    }
    rep.verdict = ModuleRoot::kAbsent;
    rep.note = image_found ? "the shipped kernel has no .module_hashes section" : "no kernel image in the shipped packages";
    return rep;
  }
  // Check A: every shipped module proves its place under the shipped root.
  const Artifact* holder = order_holder(shipped);
  const std::size_t n = holder ? holder->modules_order.size() : 0;
  if (!holder && rep.shipped->levels > 0) rep.invalid.push_back({"modules.order", "missing from the shipped packages"});
  std::set<std::int64_t> seen;
  for (const auto* a : shipped) {
    for (const auto& m : a->modules) {
      if (!m.error.empty()) {
        rep.invalid.push_back({m.member, m.error});
        continue;
      }
      if (m.trailer != kmod::TrailerKind::kMerkle || !m.proof) {
        rep.invalid.push_back({m.member, "no Merkle proof (trailer: " + std::string(kmod::trailer_kind_name(m.trailer)) + ")"});
        continue;
      }
      if (m.order_pos < 0) {
        rep.invalid.push_back({m.member, "not listed in modules.order"});
        continue;
      }
      seen.insert(m.order_pos);
      if (static_cast<std::int64_t>(m.proof->pos) != m.order_pos) {
        rep.invalid.push_back({m.member, "proof position " + std::to_string(m.proof->pos) + " but modules.order position " +
                                             std::to_string(m.order_pos)});
        continue;
      }
      auto v = kmod::verify_proof(m.leaf_at_proof, *m.proof, *rep.shipped);
      if (!v) {
        rep.invalid.push_back({m.member, "proof does not verify against the shipped root: " + v.error().message()});
        continue;
      }
      ++rep.verified;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!seen.count(static_cast<std::int64_t>(i))) {
      rep.invalid.push_back({holder->modules_order[i], "listed in modules.order but not shipped"});
    }
  }
  if (!rep.invalid.empty()) {
    rep.verdict = ModuleRoot::kInvalid;
    return rep;
  }
  // Check B: the rebuilt modules give the same root, bit for bit.
  if (rep.rebuilt && *rep.rebuilt == *rep.shipped) {
    rep.verdict = ModuleRoot::kMatch;
  } else {
    rep.verdict = ModuleRoot::kMismatch;
    if (!rep.rebuilt) rep.note = rebuilt.empty() ? "no rebuilt packages" : why;
  }
  return rep;
}

namespace {

// Package metadata that records other members' digests and sizes: named only
// when it differs beyond those (see MemberDigest::stripped_sha256).
bool is_metadata(const std::string& path) {
  return path == ".PKGINFO" || path == ".BUILDINFO" || path == ".MTREE" || path == "rpm-header" ||
         path.rfind("control.tar/", 0) == 0;
}

}  // namespace

namespace {

// A kernel image member whose stripped digests differ: equal once the
// build-time key's parts are masked (recorded in `rep`), or not (a note).
bool equal_masked(const std::string& member, const MemberDigest& a, const MemberDigest& b, FilesReport& rep) {
  if (!a.mask || !b.mask) {
    const std::string& err = !a.mask ? a.mask_error : b.mask_error;
    if (!err.empty()) rep.mask_notes.push_back({member, std::string(!a.mask ? "shipped" : "rebuilt") + " image: " + err});
    return false;
  }
  const std::string why = kmod::compare_masks(*a.mask, *b.mask);
  if (!why.empty()) {
    rep.mask_notes.push_back({member, why});
    return false;
  }
  rep.masked.push_back({member, a.mask->ranges});
  return true;
}

}  // namespace

FilesReport files_verdict(const Artifact& shipped, const Artifact& rebuilt) {
  FilesReport rep;
  if (shipped.file_sha256 == rebuilt.file_sha256) return rep;
  bool different = false, modulo_sig = false;
  std::set<std::string> keys;
  for (const auto& [k, v] : shipped.members) keys.insert(k);
  for (const auto& [k, v] : rebuilt.members) keys.insert(k);
  for (const auto& k : keys) {
    auto s = shipped.members.find(k);
    auto r = rebuilt.members.find(k);
    if (s == shipped.members.end() || r == rebuilt.members.end()) {
      rep.differing.push_back(k);
      different = true;
      continue;
    }
    const auto& a = s->second;
    const auto& b = r->second;
    if (a.type != b.type || a.mode != b.mode) {
      rep.differing.push_back(k);
      different = true;
    } else if (a.stripped_sha256 != b.stripped_sha256) {
      rep.differing.push_back(k);
      if (equal_masked(k, a, b, rep)) {
        modulo_sig = true;
      } else {
        different = true;
      }
    } else if (a.sha256 != b.sha256) {
      // Equal once signatures (or, for metadata, recorded digests) are
      // stripped: named, except metadata.
      if (!is_metadata(k)) {
        rep.differing.push_back(k);
        modulo_sig = true;
      }
    }
  }
  // Metadata is derived from the other members: named only when nothing else
  // is. A directory present on one side only is implied by the files named
  // beneath it.
  std::vector<std::string> payload;
  for (const auto& d : rep.differing) {
    if (is_metadata(d)) continue;
    const bool implied = std::any_of(rep.differing.begin(), rep.differing.end(),
                                     [&](const std::string& o) { return o.size() > d.size() && o.rfind(d + "/", 0) == 0; });
    if (!implied) payload.push_back(d);
  }
  if (!payload.empty()) rep.differing = std::move(payload);
  rep.tier = different    ? FilesTier::kDifferent
             : modulo_sig ? FilesTier::kIdenticalModuloSignatures
                          : FilesTier::kContentIdentical;
  return rep;
}

FilesReport files_verdict(const std::vector<const Artifact*>& shipped, const std::vector<const Artifact*>& rebuilt) {
  FilesReport rep;
  const bool prefix = shipped.size() > 1;
  for (std::size_t i = 0; i < shipped.size(); ++i) {
    const std::string name = shipped[i]->display_name.empty() ? shipped[i]->file.substr(shipped[i]->file.rfind('/') + 1)
                                                              : shipped[i]->display_name;
    if (i >= rebuilt.size()) {
      rep.tier = FilesTier::kDifferent;
      rep.differing.push_back(name + ": not rebuilt");
      continue;
    }
    auto one = files_verdict(*shipped[i], *rebuilt[i]);
    rep.tier = std::max(rep.tier, one.tier);
    for (auto& d : one.differing) rep.differing.push_back(prefix ? name + ":" + d : d);
    for (auto& m : one.masked) rep.masked.push_back({prefix ? name + ":" + m.member : m.member, std::move(m.ranges)});
    for (auto& n : one.mask_notes) rep.mask_notes.push_back({prefix ? name + ":" + n.member : n.member, std::move(n.note)});
  }
  return rep;
}

}  // namespace kmr::build
