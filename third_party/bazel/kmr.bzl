"""Project macros: one place for compiler flags and test/fuzz conventions."""

# Warnings apply to our code only; system headers are not affected.
KMR_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wnon-virtual-dtor",
    "-Woverloaded-virtual",
    "-Wold-style-cast",
    "-Wvla",
    "-Wno-missing-field-initializers",
]

def kmr_cc_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = KMR_COPTS + copts, **kwargs)

def kmr_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = KMR_COPTS + copts, **kwargs)

def kmr_cc_test(name, copts = [], deps = [], **kwargs):
    native.cc_test(
        name = name,
        copts = KMR_COPTS + copts,
        deps = deps + ["//third_party:gtest_main"],
        **kwargs
    )

def kmr_cc_fuzz_test(name, srcs, deps = [], corpus = None, copts = [], **kwargs):
    """A libFuzzer target.

    `name` is an ordinary test that replays every file of `corpus` through
    LLVMFuzzerTestOneInput (runs in `bazel test //...`). `name_fuzzer` is the
    real libFuzzer binary, built only with --config=fuzz (clang) and tagged
    manual so plain builds skip it.
    """
    corpus_files = native.glob([corpus + "/**"]) if corpus else []
    native.cc_test(
        name = name,
        srcs = srcs,
        copts = KMR_COPTS + copts,
        deps = deps + ["//third_party/bazel:fuzz_corpus_main"],
        data = corpus_files,
        args = ["$(location %s)" % f for f in corpus_files],
        **kwargs
    )
    native.cc_binary(
        name = name + "_fuzzer",
        srcs = srcs,
        copts = KMR_COPTS + copts + ["-fsanitize=fuzzer,address,undefined"],
        linkopts = ["-fsanitize=fuzzer,address,undefined"],
        deps = deps,
        tags = ["manual", "fuzzer"],
        testonly = True,
    )

def kmr_embedded_scripts(name, srcs, out, namespace):
    """Shell scripts kept as files and compiled in as string constants.

    Each `foo-bar.sh` of `srcs` becomes `inline constexpr std::string_view
    kFooBarScript` in the header `out`, inside `namespace`. A script holding
    the raw-string delimiter fails the build.
    """
    native.genrule(
        name = name,
        srcs = srcs,
        outs = [out],
        cmd = """
{
  echo '#pragma once'
  echo '// Generated from shell scripts by kmr_embedded_scripts (rule %s).'
  echo '#include <string_view>'
  echo 'namespace %s {'
  for f in $(SRCS); do
    if grep -q ')kmrscript' "$$f"; then echo "$$f holds the delimiter" >&2; exit 1; fi
    name=$$(basename "$$f" .sh | sed -E 's/(^|-)([a-z])/\\U\\2/g')
    printf 'inline constexpr std::string_view k%%sScript = R"kmrscript(' "$$name"
    cat "$$f"
    echo ')kmrscript";'
  done
  echo '}  // namespace %s'
} > $@
""" % (name, namespace, namespace),
    )

def kmr_distro_layout():
    """A distro folder's package layout and its test.

    `:layout` is `layout.cc` (a PackageLayout registered with
    KMR_REGISTER_LAYOUT, rebuilder/distro/package_layout.h), alwayslink so the
    registration survives the linker; //rebuilder/distros:layouts gathers it.
    `:layout_test` classifies every path of `testdata/layout_paths.txt` with
    only this layout linked (rebuilder/distro/layout_paths_test.cc).
    """
    kmr_cc_library(
        name = "layout",
        srcs = ["layout.cc"],
        visibility = ["//rebuilder/distros:__pkg__"],
        deps = ["//rebuilder/distro:package_layout"],
        alwayslink = True,
    )
    kmr_cc_test(
        name = "layout_test",
        data = ["testdata/layout_paths.txt"],
        deps = [
            ":layout",
            "//rebuilder/distro:layout_paths_test",
        ],
    )

def kmr_distro_backend(deps, scripts = True):
    """A distro folder's rebuild backend.

    `:backend` is `backend.cc` (a Backend registered by name with
    KMR_REGISTER_BACKEND, rebuilder/rebuild/backend.h), alwayslink so the
    registration survives the linker; //rebuilder/distros:backends gathers
    it. With `scripts`, the shell scripts the backend runs in the sandbox
    (`scripts/*.sh`) are compiled in as `:scripts`, the header `scripts.h` in
    namespace kmr::build (kmr_embedded_scripts: scripts/debian-build.sh
    becomes kDebianBuildScript). `deps` besides //rebuilder/base and
    //rebuilder/rebuild:backend.
    """
    srcs = ["backend.cc"]
    if scripts:
        kmr_embedded_scripts(
            name = "scripts",
            srcs = native.glob(["scripts/*.sh"]),
            out = "scripts.h",
            namespace = "kmr::build",
        )
        srcs.append(":scripts")
    kmr_cc_library(
        name = "backend",
        srcs = srcs,
        visibility = ["//rebuilder/distros:__pkg__"],
        deps = deps + [
            "//rebuilder/base",
            "//rebuilder/rebuild:backend",
        ],
        alwayslink = True,
    )
