"""oee_fuzz_target: one libFuzzer binary plus its regression test.

For a target `name` this makes
  name             a cc_binary. Under --config=fuzz (clang, --define
                   oee_fuzz=1) it links libFuzzer (-fsanitize=fuzzer); in
                   the ordinary build it links replay_main.c instead, so it
                   still builds with gcc.
  name + "_regress" a cc_test that replays corpus/<name>/ and
                   regressions/<name>/ (crash inputs found earlier) through
                   the same entry point; run it under --config=asan.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_test")
load("//:copts.bzl", "OEE_COPTS")

def oee_fuzz_target(name, srcs, deps, copts = []):
    corpus = native.glob(["corpus/%s/**" % name])
    regressions = native.glob(["regressions/%s/**" % name])
    cc_binary(
        name = name,
        srcs = srcs + select({
            ":fuzzing": [],
            "//conditions:default": ["replay_main.c"],
        }),
        copts = OEE_COPTS + copts,
        linkopts = select({
            ":fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        linkstatic = 1,
        deps = deps,
    )
    cc_test(
        name = name + "_regress",
        size = "small",
        srcs = srcs + ["replay_main.c"],
        copts = OEE_COPTS + copts,
        args = ["fuzz/corpus/" + name] +
               (["fuzz/regressions/" + name] if regressions else []),
        data = corpus + regressions,
        linkstatic = 1,
        deps = deps,
    )
